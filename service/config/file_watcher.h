#ifndef TOKENBROKER_SERVICE_CONFIG_FILE_WATCHER_H_
#define TOKENBROKER_SERVICE_CONFIG_FILE_WATCHER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/config/config.h"

namespace tokenbroker {

// The files a broker reads at run time that a reload should follow: the
// config file and the files of its apps' client ids and secrets.
std::vector<std::string> WatchedFiles(const Config& config);

// Notices when any of a set of files changes, and calls back once things
// have been quiet for a while.
//
// It watches the *directories* of the files with inotify, so that it sees
// both a file written in place or renamed over, and a Kubernetes ConfigMap
// or Secret volume update, where the kubelet writes a new timestamped
// directory and atomically renames a `..data` symlink over the old one (the
// visible files are symlinks through `..data`, so they never change
// themselves). Events for other names in those directories are ignored.
// Not seen: files mounted with `subPath` (Kubernetes never updates those).
//
// `on_change` runs on the watcher's own thread, `debounce` after the last
// of a burst of relevant events; it returns the files to watch from then on
// (e.g. from the config it just reloaded). It may block (a reload); events
// meanwhile are coalesced into one more call. When the files it returns lie
// in a directory not watched before, it is called once more after
// `debounce`: a change there between its reading and the new watch would
// otherwise go unseen.
//
// Thread-safe. The destructor stops the thread (waiting for a running
// `on_change` to return).
class FileWatcher {
 public:
  using OnChange = std::function<std::vector<std::string>()>;

  // Errors: INTERNAL if inotify is unavailable. Directories that do not
  // exist are skipped with a warning.
  static absl::StatusOr<std::unique_ptr<FileWatcher>> Start(
      std::vector<std::string> files, absl::Duration debounce,
      OnChange on_change);
  ~FileWatcher();

  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;

 private:
  struct State;
  FileWatcher() = default;
  void Loop();

  std::unique_ptr<State> state_;
  std::thread thread_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CONFIG_FILE_WATCHER_H_
