#include "service/common/thread_name.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tokenbroker {
namespace {

// The kernel's name of the calling thread.
std::string CurrentThreadName() {
  std::ifstream in(
      absl::StrCat("/proc/self/task/", syscall(SYS_gettid), "/comm"));
  std::string name;
  std::getline(in, name);
  return name;
}

TEST(SetCurrentThreadNameTest, NamesOnlyTheCallingThread) {
  std::string main_name = CurrentThreadName();
  std::string named;
  std::thread([&] {
    SetCurrentThreadName("tb-test");
    named = CurrentThreadName();
  }).join();
  EXPECT_EQ(named, "tb-test");
  EXPECT_EQ(CurrentThreadName(), main_name);
}

TEST(SetCurrentThreadNameTest, CutsLongNamesToFifteenCharacters) {
  std::string named;
  std::thread([&] {
    SetCurrentThreadName("tb-a-name-longer-than-fifteen");
    named = CurrentThreadName();
  }).join();
  EXPECT_EQ(named, "tb-a-name-longe");
}

}  // namespace
}  // namespace tokenbroker
