#ifndef TOKENBROKER_TESTS_EMULATOR_CALLBACK_SERVER_H_
#define TOKENBROKER_TESTS_EMULATOR_CALLBACK_SERVER_H_

// A stand-in for an OAuth client's (the broker's) browser-facing pages, on
// 127.0.0.1 port 0 (also reachable as localhost), for tests of the
// emulator's authorization code flow and of the scripted browser:
//   GET /oauth/start    302 to the URL given to set_start_location, setting
//                       the cookies tb_flow=<value> (Path=/oauth; HttpOnly;
//                       SameSite=Lax), as a client binds state to a browser,
//                       and tb_strict (SameSite=Strict), tb_none
//                       (SameSite=None; Secure), same value and path
//   GET /oauth/callback records its query and Cookie header; 200 "callback"
//   GET /oauth/forget   deletes tb_flow (Max-Age=0)
//   GET|POST /oauth/cookie, GET /cookie   answer the Cookie header
//   GET /form?to=URL    a page with one POST form to URL (field "a"=1)
//   GET|POST /redirect?to=URL&status=N&hops=H   a redirect to URL (N: 301..308,
//                       default 302), after H more redirects to itself
// Thread-safe.

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "httplib.h"

namespace tokenbroker::emulator {

class CallbackServer {
 public:
  struct Callback {
    std::map<std::string, std::string> query;
    std::string cookie;  // the Cookie header, "" if none
  };

  CallbackServer();  // listening when it returns
  ~CallbackServer();
  CallbackServer(const CallbackServer&) = delete;
  CallbackServer& operator=(const CallbackServer&) = delete;

  int port() const { return port_; }
  // http://127.0.0.1:PORT/oauth/callback
  std::string callback_url() const;
  // http://127.0.0.1:PORT/oauth/start
  std::string start_url() const;
  void set_start_location(const std::string& location,
                          const std::string& cookie_value)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<Callback> callbacks() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable absl::Mutex mu_;
  std::string start_location_ ABSL_GUARDED_BY(mu_);
  std::string cookie_value_ ABSL_GUARDED_BY(mu_);
  std::vector<Callback> callbacks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tokenbroker::emulator

#endif  // TOKENBROKER_TESTS_EMULATOR_CALLBACK_SERVER_H_
