#ifndef TOKENBROKER_SERVICE_COMMON_PROCESS_HARDENING_H_
#define TOKENBROKER_SERVICE_COMMON_PROCESS_HARDENING_H_

#include <string>

#include "absl/status/status.h"

namespace tokenbroker {

// Keeps the client secrets and tokens in this process's memory out of core
// dumps. Unless `allow_core_dumps`:
//   - prctl(PR_SET_DUMPABLE, 0): no core file on a crash, and processes of
//     the same user cannot ptrace it or read its /proc/PID/mem;
//   - setrlimit(RLIMIT_CORE, {0, 0}): no core file even if something makes
//     the process dumpable again (exec of a set-user-ID program aside).
// With `allow_core_dumps` (debugging) nothing is changed. Call once at
// start, before any secret is read; affects the whole process, every thread.
// Errors: INTERNAL naming the call that failed and why.
absl::Status HardenProcess(bool allow_core_dumps);

// Overwrites the bytes of `secret` in a way the compiler may not optimize
// away (OPENSSL_cleanse), then empties it. For buffers that held a client
// secret, once it has been used. Bytes a reallocation left behind earlier
// are out of its reach: size such buffers up front.
void ClearSecret(std::string* secret);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_PROCESS_HARDENING_H_
