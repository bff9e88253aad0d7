#ifndef TOKENBROKER_SERVICE_CACHE_TOKEN_PROVIDER_H_
#define TOKENBROKER_SERVICE_CACHE_TOKEN_PROVIDER_H_

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/cache/token_wait.h"
#include "service/upstream/token_source.h"

namespace tokenbroker {

// Where a component that needs tokens gets them (the Proxy, in production
// the TokenCache). Thread-safe.
class TokenProvider {
 public:
  virtual ~TokenProvider() = default;

  // Calls `done` with a token for `request` that has at least `min_ttl`
  // left: inline when one is at hand, else later on another thread. The
  // handle withdraws the waiter when cancelled or destroyed (TokenWait).
  virtual TokenWait Await(const TokenRequest& request, absl::Duration min_ttl,
                          absl::Time deadline, TokenResultCallback done) = 0;

  // The server refused `access_token` (401): do not hand it out again.
  virtual void Invalidate(const TokenRequest& request,
                          absl::string_view access_token) = 0;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CACHE_TOKEN_PROVIDER_H_
