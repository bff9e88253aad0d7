#ifndef TOKENBROKER_SERVICE_COMMON_CRASH_POINT_H_
#define TOKENBROKER_SERVICE_COMMON_CRASH_POINT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace tokenbroker {

// Crash points, for the tests that prove that a crash at any step of a
// refresh-token rotation loses no grant: the process kills itself with
// SIGKILL (no cleanup, no flush: as the kernel's OOM killer or a node
// failure would) when it reaches the armed point. Disarmed (the default),
// CrashPoint() costs one relaxed atomic load.
//
// Points: "rotation.before_request", "rotation.after_response" (the server
// has answered, possibly with a new refresh token, nothing stored yet),
// "store.after_temp_write", "store.after_rename" (the grant store's write),
// "rotation.after_store" (stored, the access token not yet served).

// Arms `name` (empty disarms). Called once at start (main's hidden
// --crash_point flag), before any thread reaches a point.
void ArmCrashPoint(std::string name);

// Kills the process if `name` is the armed point.
void CrashPoint(absl::string_view name);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_CRASH_POINT_H_
