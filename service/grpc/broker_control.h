#ifndef TOKENBROKER_SERVICE_GRPC_BROKER_CONTROL_H_
#define TOKENBROKER_SERVICE_GRPC_BROKER_CONTROL_H_

#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"

namespace tokenbroker {

// What a config reload changed.
struct ReloadSummary {
  std::vector<std::string> added;
  std::vector<std::string> changed;
  std::vector<std::string> removed;
};

// Broker-wide operations behind the admin RPCs (and SIGHUP). Thread-safe.
class BrokerControl {
 public:
  virtual ~BrokerControl() = default;

  // Drops every cached token of `app` and revokes each at the app's revoke
  // endpoint; `done` gets how many were dropped, or UNAVAILABLE naming the
  // revocations Anypoint did not confirm (the tokens are dropped anyway).
  virtual void Revoke(const std::string& app,
                      absl::AnyInvocable<void(absl::StatusOr<int>)> done) = 0;

  // Re-reads the config file and applies it atomically; tokens of apps whose
  // config is unchanged are kept. A broken file changes nothing:
  // FAILED_PRECONDITION with the reason.
  virtual absl::StatusOr<ReloadSummary> Reload() = 0;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_BROKER_CONTROL_H_
