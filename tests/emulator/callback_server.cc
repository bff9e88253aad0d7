#include "tests/emulator/callback_server.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "httplib.h"
#include "tests/testing/poll_until.h"

namespace tokenbroker::emulator {

CallbackServer::CallbackServer() {
  server_.Get("/oauth/start",
              [this](const httplib::Request&, httplib::Response& res) {
                absl::MutexLock lock(&mu_);
                for (const char* cookie :
                     {"tb_flow=VALUE; Path=/oauth; HttpOnly; SameSite=Lax",
                      "tb_strict=VALUE; Path=/oauth; SameSite=Strict",
                      "tb_none=VALUE; Path=/oauth; SameSite=None; Secure"}) {
                  res.headers.emplace(
                      "Set-Cookie",
                      absl::StrReplaceAll(cookie, {{"VALUE", cookie_value_}}));
                }
                res.set_redirect(start_location_, 302);
              });
  const auto echo_cookie = [](const httplib::Request& req,
                              httplib::Response& res) {
    res.set_content(req.get_header_value("Cookie"), "text/plain");
  };
  server_.Get("/oauth/cookie", echo_cookie);
  server_.Post("/oauth/cookie", echo_cookie);
  server_.Get("/cookie", echo_cookie);
  server_.Get("/form", [](const httplib::Request& req, httplib::Response& res) {
    // The test's own URL; escaping is not the point here.
    res.set_content(absl::StrCat("<html><body><form method=\"post\" action=\"",
                                 req.get_param_value("to"),
                                 "\"><input type=\"hidden\" name=\"a\" "
                                 "value=\"1\"></form></body></html>"),
                    "text/html");
  });
  const auto redirect = [](const httplib::Request& req,
                           httplib::Response& res) {
    const std::string to = req.get_param_value("to");
    const int hops =
        req.has_param("hops") ? std::stoi(req.get_param_value("hops")) : 0;
    const int status = req.has_param("status")
                           ? std::stoi(req.get_param_value("status"))
                           : 302;
    res.set_redirect(
        hops <= 0
            ? to
            : absl::StrCat("/redirect?hops=", hops - 1,
                           "&to=", httplib::detail::encode_query_param(to)),
        status);
  };
  server_.Get("/redirect", redirect);
  server_.Post("/redirect", redirect);
  server_.Get("/oauth/callback",
              [this](const httplib::Request& req, httplib::Response& res) {
                Callback callback;
                for (const auto& [name, value] : req.params) {
                  callback.query[name] = value;
                }
                callback.cookie = req.get_header_value("Cookie");
                absl::MutexLock lock(&mu_);
                callbacks_.push_back(std::move(callback));
                res.set_content("callback", "text/plain");
              });
  server_.Get(
      "/oauth/forget", [](const httplib::Request&, httplib::Response& res) {
        res.set_header("Set-Cookie", "tb_flow=; Path=/oauth; Max-Age=0");
        res.set_content("forgotten", "text/plain");
      });
  port_ = server_.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) std::abort();  // loopback port 0 cannot fail in a test
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  // The socket listens already; wait for the accept loop so that the
  // destructor's stop() cannot miss it.
  if (!testing::PollUntil([this] { return server_.is_running(); })) {
    std::abort();
  }
}

CallbackServer::~CallbackServer() {
  server_.stop();
  thread_.join();
}

std::string CallbackServer::callback_url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/oauth/callback");
}

std::string CallbackServer::start_url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/oauth/start");
}

void CallbackServer::set_start_location(const std::string& location,
                                        const std::string& cookie_value) {
  absl::MutexLock lock(&mu_);
  start_location_ = location;
  cookie_value_ = cookie_value;
}

std::vector<CallbackServer::Callback> CallbackServer::callbacks() const {
  absl::MutexLock lock(&mu_);
  return callbacks_;
}

}  // namespace tokenbroker::emulator
