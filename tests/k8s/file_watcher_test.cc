#include "service/config/file_watcher.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config.h"

namespace tokenbroker {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;

void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class FileWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/tokenbroker-watch-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
  }
  void TearDown() override {
    watcher_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  void Watch(std::vector<std::string> files,
             std::vector<std::string> next_files = {}) {
    absl::StatusOr<std::unique_ptr<FileWatcher>> watcher = FileWatcher::Start(
        files, absl::Milliseconds(20), [this, files, next_files] {
          absl::MutexLock lock(&mu_);
          ++changes_;
          return next_files.empty() ? files : next_files;
        });
    ASSERT_TRUE(watcher.ok()) << watcher.status();
    watcher_ = *std::move(watcher);
  }

  // Waits (bounded) until at least `n` changes were reported.
  bool AwaitChanges(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return changes_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(20));
  }

  fs::path dir_;
  std::unique_ptr<FileWatcher> watcher_;
  absl::Mutex mu_;
  int changes_ ABSL_GUARDED_BY(mu_) = 0;
};

// What the kubelet does when a ConfigMap or Secret changes: the new
// content goes to a fresh directory and the `..data` symlink is renamed
// over; the visible file is a symlink through `..data` that never changes.
TEST_F(FileWatcherTest, SeesAKubernetesVolumeUpdate) {
  fs::create_directory(dir_ / "..2026_01_01_00_00_00.1");
  WriteFile(dir_ / "..2026_01_01_00_00_00.1" / "broker.yaml", "old");
  fs::create_directory_symlink("..2026_01_01_00_00_00.1", dir_ / "..data");
  fs::create_symlink("..data/broker.yaml", dir_ / "broker.yaml");
  Watch({(dir_ / "broker.yaml").string()});

  fs::create_directory(dir_ / "..2026_01_01_00_01_00.2");
  WriteFile(dir_ / "..2026_01_01_00_01_00.2" / "broker.yaml", "new");
  fs::create_directory_symlink("..2026_01_01_00_01_00.2", dir_ / "..data_tmp");
  fs::rename(dir_ / "..data_tmp", dir_ / "..data");
  fs::remove_all(dir_ / "..2026_01_01_00_00_00.1");

  ASSERT_TRUE(AwaitChanges(1));
  EXPECT_EQ(ReadFile(dir_ / "broker.yaml"), "new");
}

TEST_F(FileWatcherTest, SeesAFileWrittenInPlaceOrRenamedOver) {
  WriteFile(dir_ / "broker.yaml", "one");
  Watch({(dir_ / "broker.yaml").string()});

  WriteFile(dir_ / "broker.yaml", "two");
  ASSERT_TRUE(AwaitChanges(1));

  WriteFile(dir_ / "broker.yaml.tmp", "three");
  fs::rename(dir_ / "broker.yaml.tmp", dir_ / "broker.yaml");
  ASSERT_TRUE(AwaitChanges(2));
}

TEST_F(FileWatcherTest, FollowsTheFilesTheCallbackReturns) {
  fs::create_directory(dir_ / "config");
  fs::create_directory(dir_ / "secrets");
  WriteFile(dir_ / "config" / "broker.yaml", "one");
  WriteFile(dir_ / "secrets" / "client_secret", "s1");
  // After the first change, the (reloaded) config names a secret file in
  // another directory.
  Watch({(dir_ / "config" / "broker.yaml").string()},
        {(dir_ / "config" / "broker.yaml").string(),
         (dir_ / "secrets" / "client_secret").string()});

  WriteFile(dir_ / "config" / "broker.yaml", "two");
  ASSERT_TRUE(AwaitChanges(1));
  // The secrets directory is new to the watcher: it calls back once more,
  // in case the secret changed before its watch was in place.
  ASSERT_TRUE(AwaitChanges(2));
  WriteFile(dir_ / "secrets" / "client_secret", "s2");
  ASSERT_TRUE(AwaitChanges(3));
}

TEST(WatchedFilesTest, TheConfigAndEveryFileSecret) {
  absl::StatusOr<Config> config = ParseConfig(
      "apps:\n"
      "  - name: a\n"
      "    control_plane: us\n"
      "    client_id: {file: /run/secrets/a/client_id}\n"
      "    client_secret: {file: /run/secrets/a/client_secret}\n"
      "  - name: b\n"
      "    control_plane: us\n"
      "    client_id: plain-id\n"
      "    client_secret: {env: B_SECRET}\n",
      "broker.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  config->path = "/etc/token-broker/broker.yaml";
  EXPECT_THAT(
      WatchedFiles(*config),
      ElementsAre("/etc/token-broker/broker.yaml", "/run/secrets/a/client_id",
                  "/run/secrets/a/client_secret"));
}

}  // namespace
}  // namespace tokenbroker
