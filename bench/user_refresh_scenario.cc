// user_refresh: the refresh-token path of apps acting on behalf of users
// beside client credentials, in one broker (bench/scenarios.h).

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/load.h"
#include "bench/round_report.h"
#include "bench/scenarios.h"
#include "bench/unary_call.h"
#include "bench/user_sign_in.h"
#include "openssl/rand.h"

namespace tokenbroker::bench {

namespace pb = ::anypoint::tokenbroker::v1;
using nlohmann::json;

namespace {

// The walkthrough's user app (members of Acme Corp only) and its secret in
// the demo fixture.
constexpr char kUserClientId[] = "env-viewer-app";
constexpr char kUserClientSecret[] = "env-viewer-fake-secret";
constexpr char kUserApp[] = "viewer";  // Its name in the broker.
constexpr char kStoreKeyId[] = "bench";
// The counters of the emulator's token endpoint by grant_type.
constexpr char kClientCredentials[] = "client_credentials";
constexpr char kRefreshToken[] = "refresh_token";

void Fail(const std::string& what) {
  std::cerr << "user_refresh: " << what << "\n";
  std::exit(1);
}

// The demo fixture with `count` users who may sign in to the user app:
// alice.acme, then bench users of the app's organization.
emulator::Fixture FixtureWithUsers(int count,
                                   std::vector<UserCredentials>* users) {
  emulator::Fixture fixture = DemoFixture();
  auto app = std::find_if(fixture.apps.begin(), fixture.apps.end(),
                          [](const emulator::AppFixture& a) {
                            return a.client_id == kUserClientId;
                          });
  if (app == fixture.apps.end()) Fail("the demo fixture has no env-viewer-app");
  users->push_back({"alice.acme", "alice-demo-password"});
  for (int i = 2; i <= count; ++i) {
    emulator::UserFixture user;
    user.id = absl::StrCat("bench-user-", i);
    user.username = absl::StrCat("bench.user", i);
    user.org_id = app->org_id;
    user.org_ids = {app->org_id};
    user.password = absl::StrCat("bench-user-", i, "-password");
    users->push_back({user.username, user.password});
    fixture.users.push_back(std::move(user));
  }
  return fixture;
}

// 32 random bytes as 64 hex digits: a grant store key file's content.
std::string RandomKeyHex() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) Fail("no random bytes");
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

// Sets the emulator up (token lifetime, rotation, the users' sign-ins),
// seeds the grant store and returns the config of both paths' apps: `keys`
// client-credentials apps cc-0.. and the user app with one grant per user.
BrokerExtras SetUp(emulator::Emulator& emulator, const std::string& dir,
                   const UserRefreshOptions& options,
                   const std::vector<UserCredentials>& users,
                   std::vector<std::string>* usernames) {
  emulator.SetTokenLifetime(options.token_lifetime_s);
  if (!emulator.SetRotateRefreshTokens(kUserClientId, true).ok()) {
    Fail("cannot turn rotation on");
  }
  absl::StatusOr<std::vector<UserGrant>> grants = SignInUsers(
      emulator,
      {kUserApp, kUserClientId, kUserClientSecret, "view:environment"}, users);
  if (!grants.ok()) Fail(std::string(grants.status().message()));
  for (const UserGrant& grant : *grants) usernames->push_back(grant.username);
  WriteFile(dir + "/grant-key", RandomKeyHex() + "\n");
  WriteFile(dir + "/viewer", std::string(kUserClientSecret) + "\n");
  if (absl::Status seeded = SeedGrantStore(dir + "/grants", kStoreKeyId,
                                           dir + "/grant-key", *grants);
      !seeded.ok()) {
    Fail(std::string(seeded.message()));
  }

  BrokerExtras extras;
  // Tokens of a few seconds: the default floor (10 s) would refuse them.
  extras.cache = "  min_lifetime: 1s\n";
  for (int i = 0; i < options.grants; ++i) {
    absl::StrAppend(&extras.apps, "  - name: cc-", i,
                    "\n    base_url: ", emulator.base_url(),
                    "\n    client_id: exchange-reader\n"
                    "    client_secret: {file: ",
                    dir, "/ex}\n    scopes: [read:exchange]\n");
    absl::StrAppend(&extras.grants, "      - {app: cc-", i,
                    ", scopes: ['*']}\n");
  }
  absl::StrAppend(&extras.apps, "  - name: ", kUserApp,
                  "\n    base_url: ", emulator.base_url(),
                  "\n    grant_type: authorization_code\n"
                  "    client_id: ",
                  kUserClientId, "\n    client_secret: {file: ", dir,
                  "/viewer}\n    scopes: [view:environment]\n");
  absl::StrAppend(&extras.grants, "      - {app: ", kUserApp,
                  ", scopes: ['*'], users: ['*']}\n");
  extras.sections = absl::StrCat("grant_store:\n  directory: ", dir,
                                 "/grants\n  keys: [{id: ", kStoreKeyId,
                                 ", file: ", dir, "/grant-key}]\n");
  return extras;
}

// One way of getting tokens: its keys and the grant_type its upstream
// requests carry.
struct Path {
  std::string grant_type;
  std::vector<pb::GetTokenRequest> keys;
};

int64_t TokenRequests(emulator::Emulator& emulator,
                      const std::string& grant_type) {
  return emulator.GetCounters().token_requests_by_grant_type[grant_type];
}

// `per_key` concurrent cold GetToken for each key of `path`: upstream
// requests (one per key when they coalesce) and time to serve all.
json ColdBurst(InProcessBroker& broker, const Path& path, int per_key) {
  const int keys = static_cast<int>(path.keys.size());
  const int64_t before = TokenRequests(broker.emulator(), path.grant_type);
  auto* stub = &broker.broker();
  BurstResult burst =
      RunBurst(keys * per_key, [&](int i, std::function<void(bool)> done) {
        StartGetToken(stub, path.keys[i % keys], std::move(done));
      });
  if (burst.unanswered > 0) Fail("cold callers did not finish in a minute");
  json row{{"grant_type", path.grant_type},
           {"keys", keys},
           {"callers", keys * per_key},
           {"upstream_requests",
            TokenRequests(broker.emulator(), path.grant_type) - before},
           {"errors", burst.errors},
           {"time_ms", burst.seconds * 1000}};
  std::cerr << "user_refresh cold " << row.dump() << "\n";
  return row;
}

// What one closed-loop caller saw: its last token and how often it changed.
// A caller's completions are sequential, so it needs no lock.
struct SeenTokens {
  std::string last;  // A secret; compared, never printed.
  int64_t changes = 0;
};

// Steady load on warm keys over several refresh cycles: upstream requests
// per key per cycle, callers that waited, GetToken latency.
json Cycles(InProcessBroker& broker, const Path& path,
            const UserRefreshOptions& options) {
  const int keys = static_cast<int>(path.keys.size());
  const int callers = keys * options.callers_per_key;
  auto* stub = &broker.broker();
  std::vector<SeenTokens> seen(callers);
  StartFn start = [&](int caller, std::function<void(bool)> done) {
    SeenTokens* mine = &seen[caller];
    Unary<pb::GetTokenRequest, pb::GetTokenResponse>(
        [stub](auto... args) { stub->async()->GetToken(args...); },
        path.keys[caller % keys],
        [mine](const grpc::Status& s, const pb::GetTokenResponse& r) {
          if (!s.ok() || r.access_token().empty()) return false;
          if (!mine->last.empty() && mine->last != r.access_token()) {
            ++mine->changes;
          }
          mine->last = r.access_token();
          return true;
        },
        std::move(done));
  };
  // A run whose callers are stuck past a minute returns no window, and its
  // late completions would still write into `seen`: give up then.
  auto run = [&](absl::Duration duration) {
    LoadResult result =
        RunClosedLoop(callers, absl::ZeroDuration(), duration, start);
    if (result.seconds == 0) Fail("callers did not finish in a minute");
    return result;
  };
  run(options.warmup);
  for (SeenTokens& s : seen) s = SeenTokens{};

  emulator::Counters counters_before = broker.emulator().GetCounters();
  TokenCacheStats stats_before = broker.server().cache().stats();
  LoadResult load = run(options.duration);
  emulator::Counters counters_after = broker.emulator().GetCounters();
  TokenCacheStats stats_after = broker.server().cache().stats();

  // Each key's callers see the same tokens; the one that saw most changes
  // counts the key's new tokens in the window (its refresh cycles).
  std::vector<int64_t> new_tokens_per_key(keys, 0);
  for (int caller = 0; caller < callers; ++caller) {
    int64_t& most = new_tokens_per_key[caller % keys];
    most = std::max(most, seen[caller].changes);
  }
  int64_t new_tokens = 0;
  for (int64_t n : new_tokens_per_key) new_tokens += n;
  auto delta = [&](const std::string& grant_type) {
    return counters_after.token_requests_by_grant_type[grant_type] -
           counters_before.token_requests_by_grant_type[grant_type];
  };
  const int64_t upstream = delta(path.grant_type);
  const std::string other =
      path.grant_type == kRefreshToken ? kClientCredentials : kRefreshToken;
  // Every token answer issues an access token, plus a refresh token when it
  // rotates: what is left over are the rotated refresh tokens (of both
  // paths' requests in the window).
  const int64_t rotations =
      (counters_after.tokens_issued - counters_before.tokens_issued) -
      delta(kClientCredentials) - delta(kRefreshToken);
  const double seconds = absl::ToDoubleSeconds(options.duration);
  const double interval_s = options.token_lifetime_s * 2.0 / 3.0;
  json row{{"grant_type", path.grant_type},
           {"keys", keys},
           {"callers_per_key", options.callers_per_key},
           {"token_lifetime_s", options.token_lifetime_s},
           {"expected_cycles_per_key", seconds / interval_s},
           {"new_tokens_seen", new_tokens},
           {"new_tokens_seen_per_key", new_tokens_per_key},
           {"upstream_requests", upstream},
           {"upstream_per_key_per_cycle",
            new_tokens > 0 ? static_cast<double>(upstream) / new_tokens : 0.0},
           // The other path's keys, warm and without callers, keep being
           // refreshed ahead meanwhile.
           {"other_path_upstream_requests", delta(other)},
           {"refresh_tokens_rotated", rotations},
           {"waited_after_warmup", stats_after.waits - stats_before.waits},
           {"fetch_failures",
            stats_after.fetch_failures - stats_before.fetch_failures},
           {"refresh_token_reuse_detected",
            counters_after.refresh_token_reuse_detected}};
  row.update(ToJson(load));
  std::cerr << "user_refresh cycles " << row.dump() << "\n";
  return row;
}

}  // namespace

json RunUserRefresh(const UserRefreshOptions& options) {
  const absl::Time begin = absl::Now();
  std::vector<UserCredentials> users;
  std::vector<std::string> usernames;
  BrokerSetup setup;
  setup.audit = options.audit;
  setup.fixture = FixtureWithUsers(options.grants, &users);
  setup.extras = [&](emulator::Emulator& emulator, const std::string& dir) {
    return SetUp(emulator, dir, options, users, &usernames);
  };
  InProcessBroker broker(std::move(setup));

  Path client_credentials{kClientCredentials, {}};
  Path refresh_token{kRefreshToken, {}};
  for (int i = 0; i < options.grants; ++i) {
    pb::GetTokenRequest request;
    request.set_app(absl::StrCat("cc-", i));
    client_credentials.keys.push_back(request);
    request.set_app(kUserApp);
    request.set_user(usernames[i]);
    refresh_token.keys.push_back(request);
  }
  json cold = json::array();
  for (const Path* path : {&client_credentials, &refresh_token}) {
    cold.push_back(ColdBurst(broker, *path, options.cold_callers_per_key));
  }
  json cycles = json::array();
  for (const Path* path : {&client_credentials, &refresh_token}) {
    cycles.push_back(Cycles(broker, *path, options));
  }
  // Refresh tokens the emulator would still accept, per grant: 2 (the
  // latest and its predecessor, until the latest is presented) when the
  // broker always refreshes with the newest one it stored; more if it kept
  // using an old one.
  int live_grants = 0, most_live_refresh_tokens = 0;
  for (const emulator::GrantInfo& grant : broker.emulator().ListGrants()) {
    if (grant.client_id != kUserClientId) continue;
    ++live_grants;
    most_live_refresh_tokens =
        std::max(most_live_refresh_tokens, grant.live_refresh_tokens);
  }
  return json{{"grants", options.grants},
              {"live_grants_at_end", live_grants},
              {"most_live_refresh_tokens_per_grant", most_live_refresh_tokens},
              {"cold", cold},
              {"cycles", cycles},
              {"wall_seconds", absl::ToDoubleSeconds(absl::Now() - begin)}};
}

}  // namespace tokenbroker::bench
