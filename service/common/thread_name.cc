#include "service/common/thread_name.h"

#include <pthread.h>

#include <cstring>
#include <string>

namespace tokenbroker {

void SetCurrentThreadName(const char* name) {
  constexpr size_t kMaxLength = 15;  // TASK_COMM_LEN - 1.
  std::string cut(name, strnlen(name, kMaxLength));
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace tokenbroker
