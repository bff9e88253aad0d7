#ifndef TOKENBROKER_SERVICE_COMMON_THREAD_NAME_H_
#define TOKENBROKER_SERVICE_COMMON_THREAD_NAME_H_

namespace tokenbroker {

// Names the calling thread (shown by `top -H`, `ps -L`, perf and gdb).
// Linux keeps at most 15 characters; longer names are cut. Best effort.
void SetCurrentThreadName(const char* name);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_THREAD_NAME_H_
