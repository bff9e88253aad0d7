// call: through the broker vs directly with libcurl (bench/scenarios.h).

#include <curl/curl.h>

#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/scenarios.h"
#include "bench/unary_call.h"

namespace tokenbroker::bench {

namespace pb = ::anypoint::tokenbroker::v1;
using nlohmann::json;

namespace {

// Drives libcurl easy handles (one per caller, reused so connections are
// kept) on one thread with the multi interface.
class CurlDriver {
 public:
  CurlDriver(std::string url, std::string token)
      : url_(std::move(url)), token_(std::move(token)) {
    multi_ = curl_multi_init();
    // The broker's CurlHttpClient defaults: at most 16 connections to one
    // host, which is also what the emulator serves at once (a thread per
    // connection).
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
    thread_ = std::thread([this] { Loop(); });
  }
  ~CurlDriver() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    curl_multi_wakeup(multi_);
    thread_.join();
    for (auto& [caller, easy] : easies_) {
      curl_multi_remove_handle(multi_, easy);
      curl_easy_cleanup(easy);
    }
    curl_slist_free_all(headers_);
    curl_multi_cleanup(multi_);
  }

  void Start(int caller, std::function<void(bool)> done) {
    {
      absl::MutexLock lock(&mu_);
      queued_.push_back({caller, std::move(done)});
    }
    curl_multi_wakeup(multi_);
  }

 private:
  struct Request {
    int caller;
    std::function<void(bool)> done;
  };

  static size_t Discard(char*, size_t size, size_t count, void*) {
    return size * count;
  }

  CURL* EasyFor(int caller) {
    auto it = easies_.find(caller);
    if (it != easies_.end()) return it->second;
    if (headers_ == nullptr) {
      headers_ = curl_slist_append(
          nullptr, absl::StrCat("Authorization: Bearer ", token_).c_str());
    }
    CURL* easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &CurlDriver::Discard);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30000L);
    easies_[caller] = easy;
    return easy;
  }

  void Loop() {
    std::unordered_map<CURL*, Request> active;
    while (true) {
      std::deque<Request> queued;
      {
        absl::MutexLock lock(&mu_);
        if (stop_) break;
        queued.swap(queued_);
      }
      for (Request& request : queued) {
        CURL* easy = EasyFor(request.caller);
        curl_multi_add_handle(multi_, easy);
        active[easy] = std::move(request);
      }
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL* easy = msg->easy_handle;
        long code = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        bool ok = msg->data.result == CURLE_OK && code == 200;
        curl_multi_remove_handle(multi_, easy);
        Request request = std::move(active[easy]);
        active.erase(easy);
        request.done(ok);
      }
      curl_multi_poll(multi_, nullptr, 0, 100, nullptr);
    }
  }

  const std::string url_;
  const std::string token_;
  CURLM* multi_;
  curl_slist* headers_ = nullptr;
  std::unordered_map<int, CURL*> easies_;  // Loop thread only.
  absl::Mutex mu_;
  std::deque<Request> queued_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace

json RunCall(InProcessBroker& broker, const RoundOptions& options,
             const std::string& paths) {
  constexpr char kPath[] = "/accounts/api/me";
  pb::GetTokenResponse token;
  {
    grpc::ClientContext context;
    pb::GetTokenRequest request;
    request.set_app("design-center");
    if (!broker.broker().GetToken(&context, request, &token).ok()) {
      std::cerr << "GetToken failed\n";
      std::exit(1);
    }
  }
  const std::string url = absl::StrCat(broker.emulator().base_url(), kPath);
  std::unique_ptr<CurlDriver> direct;
  pb::CallRequest call;
  call.set_app("design-center");
  call.set_method("GET");
  call.set_path(kPath);
  auto* stub = &broker.broker();
  StartFn through_broker = [&](int, std::function<void(bool)> done) {
    Unary<pb::CallRequest, pb::CallResponse>(
        [stub](auto... args) { stub->async()->Call(args...); }, call,
        [](const grpc::Status& s, const pb::CallResponse& r) {
          return s.ok() && r.status() == 200;
        },
        std::move(done));
  };
  StartFn directly = [&](int caller, std::function<void(bool)> done) {
    direct->Start(caller, std::move(done));
  };
  bool broker_connections_open = false;
  std::vector<RoundKind> kinds;
  if (absl::StrContains(paths, "direct")) {
    RoundKind kind{"direct", directly};
    kind.before_run = [&] {
      // The emulator serves one connection per thread and keeps idle ones
      // for 5 s: let the broker's idle connections of the previous run time
      // out so that both paths find the emulator alike.
      if (broker_connections_open) absl::SleepFor(absl::Milliseconds(5500));
      direct = std::make_unique<CurlDriver>(url, token.access_token());
    };
    // Closing its connections frees the emulator's threads at once.
    kind.after_run = [&] { direct.reset(); };
    kinds.push_back(std::move(kind));
  }
  if (absl::StrContains(paths, "broker")) {
    RoundKind kind{"broker", through_broker};
    kind.after_run = [&] { broker_connections_open = true; };
    kinds.push_back(std::move(kind));
  }
  return RunRounds("call", options, kinds);
}

}  // namespace tokenbroker::bench
