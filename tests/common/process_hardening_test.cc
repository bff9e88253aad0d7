#include "service/common/process_hardening.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tokenbroker {
namespace {

// Runs `check` in a forked child (so that this process keeps its own
// settings) and returns its exit code, or -1 if it did not exit normally.
// The child only makes system calls and _exit()s: no gtest in there.
int InChild(const std::function<int()>& check) {
  pid_t pid = fork();
  if (pid == 0) _exit(check());
  if (pid < 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// Exit codes of the child, each naming what was wrong.
constexpr int kOk = 0;
constexpr int kHardenFailed = 10;
constexpr int kStillDumpable = 11;
constexpr int kCoreLimitNotZero = 12;
constexpr int kNotDumpable = 13;
constexpr int kCoreLimitChanged = 14;

TEST(HardenProcessTest, NoCoreDumpsByDefault) {
  EXPECT_EQ(InChild([] {
              // As a container may start it: dumpable, core files allowed.
              struct rlimit some = {1 << 20, RLIM_INFINITY};
              setrlimit(RLIMIT_CORE, &some);
              if (!HardenProcess(/*allow_core_dumps=*/false).ok()) {
                return kHardenFailed;
              }
              if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
                return kStillDumpable;
              }
              struct rlimit limit = {1, 1};
              if (getrlimit(RLIMIT_CORE, &limit) != 0 || limit.rlim_cur != 0 ||
                  limit.rlim_max != 0) {
                return kCoreLimitNotZero;
              }
              return kOk;
            }),
            kOk);
}

TEST(HardenProcessTest, AllowCoreDumpsChangesNothing) {
  EXPECT_EQ(
      InChild([] {
        // A known state: dumpable, core files allowed.
        struct rlimit before = {1 << 20, RLIM_INFINITY};
        setrlimit(RLIMIT_CORE, &before);
        getrlimit(RLIMIT_CORE, &before);
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        if (!HardenProcess(/*allow_core_dumps=*/true).ok()) {
          return kHardenFailed;
        }
        if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != dumpable || dumpable == 0) {
          return kNotDumpable;
        }
        struct rlimit after = {};
        getrlimit(RLIMIT_CORE, &after);
        if (after.rlim_cur != before.rlim_cur ||
            after.rlim_max != before.rlim_max) {
          return kCoreLimitChanged;
        }
        return kOk;
      }),
      kOk);
}

TEST(ClearSecretTest, OverwritesAndEmpties) {
  for (std::string secret :
       {std::string("short"), std::string(100, 's')}) {  // SSO and heap.
    const char* data = secret.data();
    const size_t size = secret.size();
    ClearSecret(&secret);
    EXPECT_TRUE(secret.empty());
    // The storage is still the string's (clear() keeps it): its old bytes
    // are gone.
    EXPECT_EQ(secret.data(), data);
    EXPECT_EQ(std::string(data, size), std::string(size, '\0'));
  }
  std::string empty;
  ClearSecret(&empty);
  EXPECT_TRUE(empty.empty());
}

}  // namespace
}  // namespace tokenbroker
