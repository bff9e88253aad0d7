#ifndef TOKENBROKER_SERVICE_UPSTREAM_CURL_HTTP_CLIENT_H_
#define TOKENBROKER_SERVICE_UPSTREAM_CURL_HTTP_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/upstream/curl_wrappers.h"
#include "service/upstream/http_client.h"

namespace tokenbroker {
namespace internal {
struct CurlTransfer;  // One transfer in flight (curl_transfer.h).
}  // namespace internal

struct CurlHttpClientOptions {
  // PEM CA bundle used to verify servers; empty: libcurl's system default.
  std::string ca_file;
  absl::Duration connect_timeout = absl::Seconds(5);
  // Limits on open connections (0: no limit). Transfers over the limit wait
  // in libcurl's queue; their `timeout` keeps running.
  long max_total_connections = 64;
  long max_host_connections = 16;
};

// The client's counters (connections_opened: CURLINFO_NUM_CONNECTS).
using CurlHttpClientStats = UpstreamStats;

// HttpClient on libcurl's multi interface: one event-loop thread drives every
// transfer (never a thread per request), reusing connections through the
// multi handle's connection cache and negotiating HTTP/2 over TLS where the
// server offers it.
//
// Policy applied to every request: only http and https, no redirects
// followed, TLS peer and host verification on, the `https_proxy`,
// `http_proxy` and `no_proxy` environment variables honoured (libcurl's
// defaults), no signals.
//
// Thread safety: all methods are thread-safe. Callbacks run on the loop
// thread with no lock held; they may call Start(), Send() or Cancel() but must
// not block (and must not call SendAndWait()). The destructor must not run on
// the loop thread (that is, from a callback): it stops the loop and completes
// every request still pending with CANCELLED.
class CurlHttpClient final : public HttpClient {
 public:
  // Errors: INTERNAL if libcurl cannot be initialized.
  static absl::StatusOr<std::unique_ptr<CurlHttpClient>> Create(
      CurlHttpClientOptions options);

  ~CurlHttpClient() override;
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  void Send(HttpRequest request, HttpCallback done) override;
  HttpRequestId Start(HttpRequest request, HttpCallback done) override;
  void Cancel(HttpRequestId id) override;
  void Resume(HttpRequestId id) override;

  UpstreamStats stats() const;

 private:
  struct Pending {
    HttpRequestId id;
    HttpRequest request;
    HttpCallback done;
  };

  CurlHttpClient(CurlHttpClientOptions options, internal::CurlMultiPtr multi);

  // Queues a cancel or resume of `id` for the loop thread and wakes it if
  // it is polling.
  enum class LoopAction { kCancel, kResume };
  void QueueForLoop(LoopAction action, HttpRequestId id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Loop-thread only.
  void Loop();
  void AddTransfer(Pending pending);
  void FinishTransfer(CURL* easy, CURLcode code);
  void CancelTransfer(HttpRequestId id);
  // Ends `transfer`: takes its easy handle out of the multi handle (keeping
  // it for reuse), frees the rest, counts the request as completed and runs
  // its callback with `result`. Every transfer ends here, exactly once.
  void CompleteTransfer(std::unique_ptr<internal::CurlTransfer> transfer,
                        absl::StatusOr<HttpResponse> result);

  const CurlHttpClientOptions options_;
  const internal::CurlMultiPtr multi_;

  mutable absl::Mutex mu_;
  std::deque<Pending> queued_ ABSL_GUARDED_BY(mu_);
  std::vector<HttpRequestId> cancels_ ABSL_GUARDED_BY(mu_);
  std::vector<HttpRequestId> resumes_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The loop is (about to be) blocked in curl_multi_poll with nothing
  // queued: new work must wake it. While it is busy, it finds the queues
  // on its next turn and no wakeup (a write and a read) is spent.
  bool polling_ ABSL_GUARDED_BY(mu_) = false;
  HttpRequestId next_id_ ABSL_GUARDED_BY(mu_) = 1;

  // Owned by the loop thread.
  std::unordered_map<HttpRequestId, std::unique_ptr<internal::CurlTransfer>>
      active_;
  // Easy handles of finished transfers, kept for reuse. Destroyed before
  // `multi_`.
  std::vector<internal::CurlEasyPtr> idle_easies_;

  std::atomic<uint64_t> requests_started_{0};
  std::atomic<uint64_t> requests_completed_{0};
  std::atomic<uint64_t> connections_opened_{0};
  std::atomic<uint64_t> connections_reused_{0};

  std::thread loop_;  // Last: starts after everything above exists.
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_UPSTREAM_CURL_HTTP_CLIENT_H_
