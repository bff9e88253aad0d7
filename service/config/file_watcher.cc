#include "service/config/file_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/log.h"
#include "service/common/thread_name.h"

namespace tokenbroker {
namespace {

// The name Kubernetes' atomic writer swaps in a ConfigMap or Secret volume.
constexpr char kKubernetesDataLink[] = "..data";

constexpr uint32_t kDirEvents = IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO |
                                IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                                IN_ATTRIB | IN_ONLYDIR;

void AddSecretFile(const SecretRef& ref, std::vector<std::string>* files) {
  if (!ref.file.empty()) files->push_back(ref.file);
}

}  // namespace

std::vector<std::string> WatchedFiles(const Config& config) {
  std::vector<std::string> files;
  if (!config.path.empty()) files.push_back(config.path);
  for (const AppConfig& app : config.apps) {
    AddSecretFile(app.client_id, &files);
    AddSecretFile(app.client_secret, &files);
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

// Used by the watcher thread only (after Start() hands it over).
struct FileWatcher::State {
  int inotify_fd = -1;
  int stop_fd = -1;
  absl::Duration debounce;
  OnChange on_change;
  std::map<int, std::string> dir_of_watch;
  std::map<std::string, int> watch_of_dir;
  std::map<std::string, std::set<std::string>> names_in_dir;

  ~State() {
    if (inotify_fd >= 0) close(inotify_fd);
    if (stop_fd >= 0) close(stop_fd);
  }

  // Watches the directories of `files` (and no others). Returns whether a
  // directory is watched now that was not before.
  bool SetFiles(const std::vector<std::string>& files) {
    bool added = false;
    names_in_dir.clear();
    for (const std::string& file : files) {
      std::filesystem::path path(file);
      std::string dir = path.parent_path().string();
      if (dir.empty()) dir = ".";
      names_in_dir[dir].insert(path.filename().string());
    }
    for (auto it = watch_of_dir.begin(); it != watch_of_dir.end();) {
      if (names_in_dir.count(it->first) == 0) {
        inotify_rm_watch(inotify_fd, it->second);
        dir_of_watch.erase(it->second);
        it = watch_of_dir.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [dir, names] : names_in_dir) {
      if (watch_of_dir.count(dir) != 0) continue;
      int wd = inotify_add_watch(inotify_fd, dir.c_str(), kDirEvents);
      if (wd < 0) {
        LogWarning("cannot watch a directory for changes; reload with SIGHUP",
                   {{"dir", dir}, {"error", std::strerror(errno)}});
        continue;
      }
      watch_of_dir[dir] = wd;
      dir_of_watch[wd] = dir;
      added = true;
    }
    return added;
  }

  // Reads pending events; true if one concerns a watched file.
  bool ReadEvents() {
    alignas(struct inotify_event) char buffer[16 * 1024];
    bool relevant = false;
    while (true) {
      ssize_t n = read(inotify_fd, buffer, sizeof(buffer));
      if (n <= 0) break;
      for (char* p = buffer; p < buffer + n;) {
        auto* event = reinterpret_cast<struct inotify_event*>(p);
        p += sizeof(struct inotify_event) + event->len;
        if (event->mask & IN_Q_OVERFLOW) {
          relevant = true;
          continue;
        }
        auto dir = dir_of_watch.find(event->wd);
        if (dir == dir_of_watch.end()) continue;
        if (event->mask & IN_IGNORED) {
          // The directory went away (or was replaced): re-added after the
          // reload, if it is still wanted.
          watch_of_dir.erase(dir->second);
          dir_of_watch.erase(dir);
          relevant = true;
          continue;
        }
        std::string name = event->len > 0 ? event->name : "";
        const std::set<std::string>& names = names_in_dir[dir->second];
        if (name == kKubernetesDataLink || names.count(name) != 0) {
          relevant = true;
        }
      }
    }
    return relevant;
  }
};

absl::StatusOr<std::unique_ptr<FileWatcher>> FileWatcher::Start(
    std::vector<std::string> files, absl::Duration debounce,
    OnChange on_change) {
  auto state = std::make_unique<State>();
  state->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  state->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (state->inotify_fd < 0 || state->stop_fd < 0) {
    return absl::InternalError(absl::StrCat(
        "cannot watch the config files (inotify): ", std::strerror(errno),
        "; reload with SIGHUP or ReloadConfig instead"));
  }
  state->debounce = debounce;
  state->on_change = std::move(on_change);
  state->SetFiles(files);
  std::unique_ptr<FileWatcher> watcher(new FileWatcher());
  watcher->state_ = std::move(state);
  watcher->thread_ = std::thread([w = watcher.get()] {
    SetCurrentThreadName("tb-config-watch");
    w->Loop();
  });
  return watcher;
}

FileWatcher::~FileWatcher() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    // The eventfd counter cannot overflow with one write.
    (void)!write(state_->stop_fd, &one, sizeof(one));
    thread_.join();
  }
}

void FileWatcher::Loop() {
  using SteadyClock = std::chrono::steady_clock;
  bool pending = false;
  SteadyClock::time_point due;
  while (true) {
    int timeout_ms = -1;
    if (pending) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          due - SteadyClock::now());
      timeout_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    struct pollfd fds[2] = {{state_->inotify_fd, POLLIN, 0},
                            {state_->stop_fd, POLLIN, 0}};
    int ready = poll(fds, 2, timeout_ms);
    if (ready < 0 && errno != EINTR) {
      LogError("config file watcher stopped; reload with SIGHUP",
               {{"error", std::strerror(errno)}});
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents != 0 && state_->ReadEvents()) {
      // Debounce: a Kubernetes update or an editor's save is several events.
      pending = true;
      due = SteadyClock::now() + absl::ToChronoNanoseconds(state_->debounce);
    }
    if (pending && SteadyClock::now() >= due) {
      pending = false;
      if (state_->SetFiles(state_->on_change())) {
        // A file in a directory watched only from now on may have changed
        // between on_change reading it and the watch: look once more.
        pending = true;
        due = SteadyClock::now() + absl::ToChronoNanoseconds(state_->debounce);
      }
    }
  }
}

}  // namespace tokenbroker
