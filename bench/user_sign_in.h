#ifndef TOKENBROKER_BENCH_USER_SIGN_IN_H_
#define TOKENBROKER_BENCH_USER_SIGN_IN_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "emulator/emulator.h"
#include "service/store/grant_store.h"

namespace tokenbroker::bench {

// A user app of the emulator and the broker's name for it.
struct UserAppClient {
  std::string app;  // The broker's app name (UserGrant::app).
  std::string client_id;
  std::string client_secret;
  std::string scope;  // Requested at authorize, e.g. "view:environment".
};

// A user who signs in on the emulator's sign-in page.
struct UserCredentials {
  std::string username;
  std::string password;
};

// Connects each of `users` to `client` as a person would, without the
// broker: the emulator's sign-in and consent pages through the scripted
// browser (tests/testing/scripted_browser.h), back to a capture server on
// loopback registered as a redirect URI of the app, the code exchanged over
// HTTP with its PKCE S256 verifier (RFC 7636) and `state` checked, then
// userinfo for who signed in (as the broker's callback does). Returns one
// grant per user, in order, holding the refresh token (a secret: never
// print one). Errors: any step that did not succeed, naming the user and
// the step, never a code or token.
absl::StatusOr<std::vector<UserGrant>> SignInUsers(
    emulator::Emulator& emulator, const UserAppClient& client,
    const std::vector<UserCredentials>& users);

// Writes `grants` to a FileGrantStore in `directory` sealed with the key
// in `key_file` (id `key_id`), then closes the store, releasing the
// directory's lock for the broker. Errors: the store's.
absl::Status SeedGrantStore(const std::string& directory,
                            const std::string& key_id,
                            const std::string& key_file,
                            const std::vector<UserGrant>& grants);

}  // namespace tokenbroker::bench

#endif  // TOKENBROKER_BENCH_USER_SIGN_IN_H_
