// The route table: which handler serves which method and path, and the
// wrapper every route gets (request counters, fault injection, the request
// log line). A new endpoint or page is registered here.

#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "emulator/emulator.h"
#include "emulator/emulator_impl.h"
#include "emulator/http_helpers.h"
#include "emulator/pages.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace tokenbroker::emulator {
namespace {

using json = nlohmann::json;
using internal::SetMessage;

constexpr char kTokenPath[] = "/accounts/api/v2/oauth2/token";
constexpr char kAuthorizePath[] = "/accounts/api/v2/oauth2/authorize";
constexpr char kRevokePath[] = "/accounts/api/v2/oauth2/revoke";
constexpr char kUserinfoPath[] = "/accounts/api/v2/oauth2/userinfo";
constexpr char kDiscoveryPath[] =
    "/accounts/api/v2/oauth2/.well-known/openid-configuration";

}  // namespace

void Emulator::Impl::Route(httplib::Server& server, const std::string& method,
                           const std::string& pattern, std::string counter,
                           std::string fault_endpoint, Handler handler) {
  Handler wrapped = [this, counter = std::move(counter),
                     fault_endpoint = std::move(fault_endpoint),
                     handler = std::move(handler)](const httplib::Request& req,
                                                   httplib::Response& res) {
    const absl::Time start = absl::Now();
    if (!counter.empty()) {
      std::string client_id, grant_type;
      if (counter == "token") {
        auto params = internal::ParseBodyParams(req);
        std::string secret;
        bool basic = false;
        internal::ClientCredentials(req,
                                    params.ok() ? *params : internal::Params(),
                                    &client_id, &secret, &basic);
        grant_type = params.ok() ? internal::ParamOr(*params, "grant_type")
                                 : std::string();
        if (grant_type != "authorization_code" &&
            grant_type != "refresh_token" &&
            grant_type != "client_credentials") {
          grant_type = "other";
        }
      }
      absl::MutexLock lock(&mu_);
      ++counters_.requests_by_endpoint[counter];
      if (counter == "token") {
        ++counters_.token_requests_by_client[client_id];
        ++counters_.token_requests_by_grant_type[grant_type];
      }
    }
    std::optional<Fault> fault;
    if (!fault_endpoint.empty()) fault = TakeFault(fault_endpoint);
    if (!fault.has_value() || !ApplyFault(*fault, counter, req, res)) {
      handler(req, res);
    }
    if (!counter.empty())
      LogRequest(req, res, counter, absl::Now() - start, fault);
  };
  if (method == "GET") {
    server.Get(pattern, wrapped);
  } else if (method == "POST") {
    server.Post(pattern, wrapped);
  } else if (method == "PUT") {
    server.Put(pattern, wrapped);
  } else if (method == "PATCH") {
    server.Patch(pattern, wrapped);
  } else if (method == "DELETE") {
    server.Delete(pattern, wrapped);
  } else if (method == "OPTIONS") {
    server.Options(pattern, wrapped);
  }
}

void Emulator::Impl::LogRequest(const httplib::Request& req,
                                const httplib::Response& res,
                                const std::string& endpoint,
                                absl::Duration elapsed,
                                const std::optional<Fault>& fault) {
  {
    absl::MutexLock lock(&mu_);
    if (!log_requests_) return;
  }
  // Never the query string, headers or body: they carry codes, tokens and
  // secrets.
  json line = {{"ts", internal::FormatTimestamp(absl::Now())},
               {"level", "info"},
               {"msg", "request"},
               {"method", req.method},
               {"path", req.path},
               {"endpoint", endpoint},
               {"status", res.status},
               {"duration_ms", absl::ToInt64Milliseconds(elapsed)},
               {"remote", absl::StrCat(req.remote_addr, ":", req.remote_port)}};
  if (fault.has_value()) line["fault"] = FaultKindName(fault->kind);
  const std::string text = internal::Dump(line) + "\n";
  absl::MutexLock lock(&log_mu_);
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

void Emulator::Impl::RegisterRoutes(httplib::Server& server) {
  using std::placeholders::_1;
  using std::placeholders::_2;
  Route(server, "POST", kTokenPath, "token", "token",
        std::bind(&Impl::HandleToken, this, _1, _2));
  Route(server, "GET", kAuthorizePath, "authorize", "authorize",
        std::bind(&Impl::HandleAuthorize, this, _1, _2));
  Route(server, "POST", internal::kLoginPath, "authorize_login", "authorize",
        std::bind(&Impl::HandleLogin, this, _1, _2));
  Route(server, "POST", internal::kConsentPath, "authorize_consent",
        "authorize", std::bind(&Impl::HandleConsent, this, _1, _2));
  Route(server, "POST", kRevokePath, "revoke", "revoke",
        std::bind(&Impl::HandleRevoke, this, _1, _2));
  Route(server, "GET", kUserinfoPath, "userinfo", "userinfo",
        std::bind(&Impl::HandleUserinfo, this, _1, _2));
  Route(server, "GET", kDiscoveryPath, "discovery", "discovery",
        std::bind(&Impl::HandleDiscovery, this, _1, _2));
  Route(server, "GET", "/accounts/api/me", "me", "resource",
        std::bind(&Impl::HandleMe, this, _1, _2));
  Route(server, "GET", "/accounts/api/organizations/([^/]+)/environments",
        "environments", "resource",
        std::bind(&Impl::HandleEnvironments, this, _1, _2));
  Route(server, "GET", "/designcenter/api-designer/projects",
        "designcenter_projects", "resource",
        std::bind(&Impl::HandleProjects, this, _1, _2));
  Route(server, "GET", "/exchange/api/v2/assets/search", "exchange_assets",
        "resource", std::bind(&Impl::HandleExchange, this, _1, _2));
  Route(server, "GET", "/cloudhub/api/applications", "cloudhub_applications",
        "resource", std::bind(&Impl::HandleCloudHub, this, _1, _2));

  // Control API: neither counted nor faulted.
  auto control = [this](std::string what) -> Handler {
    return [this, what](const httplib::Request& req, httplib::Response& res) {
      HandleControl(what, req, res);
    };
  };
  Route(server, "POST", "/_emulator/apps/([^/]+)/scopes", "", "",
        control("scopes"));
  Route(server, "POST", "/_emulator/apps/([^/]+)/revoke", "", "",
        control("revoke"));
  Route(server, "POST", "/_emulator/apps/([^/]+)/secret", "", "",
        control("secret"));
  Route(server, "POST", "/_emulator/apps/([^/]+)/refresh-token-lifetime", "",
        "", control("refresh-token-lifetime"));
  Route(server, "POST", "/_emulator/apps/([^/]+)/rotation", "", "",
        control("rotation"));
  Route(server, "POST", "/_emulator/apps/([^/]+)/redirect-uris", "", "",
        control("redirect-uris"));
  Route(server, "POST", "/_emulator/users/([^/]+)/password", "", "",
        control("password"));
  Route(server, "GET", "/_emulator/grants", "", "", control("grants"));
  Route(server, "POST", "/_emulator/grants/([^/]+)/revoke", "", "",
        control("revoke-grant"));
  Route(server, "POST", "/_emulator/advance-time", "", "",
        control("advance-time"));
  Route(server, "POST", "/_emulator/token-lifetime", "", "",
        control("token-lifetime"));
  Route(server, "POST", "/_emulator/faults", "", "", control("add-fault"));
  Route(server, "DELETE", "/_emulator/faults", "", "", control("clear-faults"));
  Route(server, "GET", "/_emulator/counters", "", "", control("counters"));
  Route(server, "POST", "/_emulator/counters/reset", "", "",
        control("reset-counters"));

  const std::vector<std::string> methods = {"GET",   "POST",   "PUT",
                                            "PATCH", "DELETE", "OPTIONS"};
  for (const std::string& method : methods) {
    Route(server, method, "/_emulator/echo(/.*)?", "echo", "echo",
          [this](const httplib::Request& req, httplib::Response& res) {
            HandleEcho(req, res, /*authed=*/false);
          });
    Route(server, method, "/_emulator/authed-echo(/.*)?", "authed_echo",
          "resource",
          [this](const httplib::Request& req, httplib::Response& res) {
            HandleEcho(req, res, /*authed=*/true);
          });
  }
  for (const std::string& method : methods) {
    Route(server, method, "/_emulator/.*", "", "",
          [](const httplib::Request& req, httplib::Response& res) {
            SetMessage(res, 404,
                       absl::StrCat("no control endpoint ", req.method, " ",
                                    req.path, " (see emulator/README.md)"));
          });
    Route(server, method, ".*", "not_found", "",
          [](const httplib::Request& req, httplib::Response& res) {
            SetMessage(res, 404,
                       absl::StrCat("the emulator does not serve ", req.method,
                                    " ", req.path));
          });
  }
}

}  // namespace tokenbroker::emulator
