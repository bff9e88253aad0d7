#include "service/grpc/call_reactors.h"

#include <algorithm>
#include <deque>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "service/auth/policy.h"
#include "service/common/status_macros.h"
#include "service/grpc/reactors.h"
#include "service/grpc/status.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;

// Records the upstream outcome of a Call in its audit record.
void RecordUpstream(RequestContext& rpc,
                    const absl::StatusOr<ProxyResult>& result) {
  if (!result.ok()) return;
  rpc.record().upstream_status = result->response.status;
  rpc.record().token_fingerprint = result->token_fingerprint;
}

// Checks an open CallStream's caller and route under a reloaded config.
absl::Status RecheckCall(RequestContext& rpc,
                         const std::shared_ptr<const Config>& config) {
  TB_RETURN_IF_ERROR(rpc.Reauthenticate(config));
  const AuditRecord& record = rpc.record();
  TB_RETURN_IF_ERROR(AuthorizeCallRequest(rpc.caller(), *config, record.app,
                                          record.scopes, record.http_method,
                                          record.path)
                         .status());
  return rpc.RecheckUser(record.app);
}

class CallReactor final : public grpc::ServerUnaryReactor {
 public:
  struct State {
    absl::Mutex mu;
    CallReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    std::unique_ptr<RequestContext> rpc ABSL_GUARDED_BY(mu);
    pb::CallResponse* response ABSL_GUARDED_BY(mu) = nullptr;
    std::shared_ptr<ProxyCall> call ABSL_GUARDED_BY(mu);
    bool finished ABSL_GUARDED_BY(mu) = false;

    void CompleteLocked(absl::StatusOr<ProxyResult> result)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (reactor == nullptr || finished) return;
      finished = true;
      call = nullptr;
      RecordUpstream(*rpc, result);
      absl::Status status = rpc->Use(result.status());
      if (status.ok()) {
        response->set_status(result->response.status);
        for (auto& [name, value] : result->response.headers) {
          pb::Header* header = response->add_headers();
          header->set_name(name);
          header->set_value(std::move(value));
        }
        response->set_body(std::move(result->response.body));
      }
      reactor->Finish(ToGrpcStatus(status));
    }
  };

  explicit CallReactor(ActiveRpcs::Registration registration)
      : registration_(std::move(registration)) {}

  void Begin(Proxy& proxy, ProxyRequest request,
             std::unique_ptr<RequestContext> rpc, pb::CallResponse* response) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = this;
      state_->rpc = std::move(rpc);
      state_->response = response;
    }
    std::shared_ptr<State> state = state_;
    // Not under the lock: the answer may come inline.
    std::shared_ptr<ProxyCall> call = proxy.Start(
        std::move(request), [state](absl::StatusOr<ProxyResult> result) {
          absl::MutexLock lock(&state->mu);
          state->CompleteLocked(std::move(result));
        });
    absl::MutexLock lock(&state->mu);
    if (!state->finished) state->call = std::move(call);
  }

  void OnCancel() override {
    std::shared_ptr<ProxyCall> call;
    {
      absl::MutexLock lock(&state_->mu);
      call = state_->call;
    }
    // Ends the upstream transfer or the wait for a token; the proxy then
    // completes with CANCELLED.
    if (call != nullptr) call->Cancel();
  }

  void OnDone() override {
    std::shared_ptr<ProxyCall> call;
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
      call = std::move(state_->call);
      state_->rpc = nullptr;
    }
    if (call != nullptr) call->Cancel();  // Only if it never answered.
    registration_.Reset();
    delete this;
  }

 private:
  const std::shared_ptr<State> state_ = std::make_shared<State>();
  ActiveRpcs::Registration registration_;
};

class CallStreamReactor final
    : public grpc::ServerWriteReactor<pb::CallStreamResponse> {
 public:
  static constexpr size_t kHighWater = 1 << 20;
  static constexpr size_t kLowWater = 256 << 10;
  static constexpr size_t kMaxMessage = 64 << 10;

  struct State final : ActiveRpcs::Stream {
    explicit State(ActiveRpcs& active) : active(active) {}
    ~State() override { active.ReleaseStreamBytes(queued_bytes_reserved); }

    ActiveRpcs& active;
    absl::Mutex mu;
    CallStreamReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    std::unique_ptr<RequestContext> rpc ABSL_GUARDED_BY(mu);
    std::shared_ptr<ProxyCall> call ABSL_GUARDED_BY(mu);
    std::deque<pb::CallStreamResponse> queue ABSL_GUARDED_BY(mu);
    size_t queued_bytes ABSL_GUARDED_BY(mu) = 0;
    // Of the broker-wide budget; released as the caller takes the data.
    int64_t queued_bytes_reserved = 0;  // Guarded by mu (read in ~State).
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool paused ABSL_GUARDED_BY(mu) = false;
    bool finishing ABSL_GUARDED_BY(mu) = false;
    bool done ABSL_GUARDED_BY(mu) = false;  // The proxy call ended.
    absl::Status final_status ABSL_GUARDED_BY(mu);
    pb::CallStreamResponse in_flight ABSL_GUARDED_BY(mu);

    void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (reactor == nullptr || writing || finishing) return;
      if (!queue.empty()) {
        in_flight = std::move(queue.front());
        queue.pop_front();
        size_t bytes = in_flight.body_chunk().size();
        queued_bytes -= bytes;
        queued_bytes_reserved -= static_cast<int64_t>(bytes);
        active.ReleaseStreamBytes(static_cast<int64_t>(bytes));
        writing = true;
        reactor->StartWrite(&in_flight);
        return;
      }
      if (done) FinishLocked(final_status);
    }

    void FinishLocked(const absl::Status& status)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (reactor == nullptr || finishing) return;
      finishing = true;
      DropQueueLocked();
      reactor->Finish(ToGrpcStatus(status));
    }

    void DropQueueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      queue.clear();
      queued_bytes = 0;
      active.ReleaseStreamBytes(queued_bytes_reserved);
      queued_bytes_reserved = 0;
    }

    void OnProxyDoneLocked(absl::StatusOr<ProxyResult> result)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      done = true;
      call = nullptr;
      if (reactor == nullptr || finishing) return;
      RecordUpstream(*rpc, result);
      final_status = rpc->Use(result.status());
      // A failed attempt's partial body is not worth sending.
      if (!result.ok()) DropQueueLocked();
      WriteNextLocked();
    }

    // Ends the stream now with `status` and cancels the upstream transfer.
    // Returns the call to cancel outside the lock.
    std::shared_ptr<ProxyCall> EndLocked(const absl::Status& status)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (reactor == nullptr || finishing) return nullptr;
      FinishLocked(status);
      return std::move(call);
    }

    bool Recheck(const std::shared_ptr<const Config>& config) override {
      std::shared_ptr<ProxyCall> cancel;
      {
        absl::MutexLock lock(&mu);
        if (reactor == nullptr || finishing) return false;
        absl::Status allowed = RecheckCall(*rpc, config);
        if (allowed.ok()) return false;
        cancel = EndLocked(rpc->Deny(allowed));
      }
      if (cancel != nullptr) cancel->Cancel();
      return true;
    }

    void End(const absl::Status& status) override {
      std::shared_ptr<ProxyCall> cancel;
      {
        absl::MutexLock lock(&mu);
        if (reactor == nullptr || finishing) return;
        cancel = EndLocked(rpc->Use(status));
      }
      if (cancel != nullptr) cancel->Cancel();
    }
  };

  // The proxy's view of the stream; holds only the shared state.
  class Sink final : public ProxyBodyStream {
   public:
    explicit Sink(std::shared_ptr<State> state) : state_(std::move(state)) {}

    void OnHead(int status, const HttpHeaders& headers) override {
      absl::MutexLock lock(&state_->mu);
      pb::CallStreamResponse head;
      head.set_status(status);
      for (const auto& [name, value] : headers) {
        pb::Header* header = head.add_headers();
        header->set_name(name);
        header->set_value(value);
      }
      state_->queue.push_back(std::move(head));
      state_->WriteNextLocked();
    }

    bool OnData(absl::string_view data) override {
      std::shared_ptr<ProxyCall> cancel;
      bool go_on = true;
      {
        absl::MutexLock lock(&state_->mu);
        if (state_->reactor == nullptr || state_->finishing) return false;
        if (absl::Status reserved = state_->active.ReserveStreamBytes(
                static_cast<int64_t>(data.size()));
            !reserved.ok()) {
          cancel = state_->EndLocked(state_->rpc->Use(reserved));
          go_on = false;
        } else {
          state_->queued_bytes_reserved += static_cast<int64_t>(data.size());
          state_->queued_bytes += data.size();
          // Fill the last queued message up to kMaxMessage, then start new
          // ones.
          while (!data.empty()) {
            if (state_->queue.empty() ||
                state_->queue.back().body_chunk().size() >= kMaxMessage) {
              state_->queue.emplace_back();
            }
            std::string* chunk = state_->queue.back().mutable_body_chunk();
            size_t n = std::min(data.size(), kMaxMessage - chunk->size());
            chunk->append(data.data(), n);
            data.remove_prefix(n);
          }
          state_->WriteNextLocked();
          if (state_->queued_bytes >= kHighWater) {
            state_->paused = true;
            state_->active.CountStreamPause();
            go_on = false;
          }
        }
      }
      if (cancel != nullptr) cancel->Cancel();
      return go_on;
    }

   private:
    const std::shared_ptr<State> state_;
  };

  CallStreamReactor(std::shared_ptr<State> state,
                    ActiveRpcs::Registration registration)
      : state_(std::move(state)), registration_(std::move(registration)) {}

  void Begin(Proxy& proxy, ProxyRequest request) {
    std::shared_ptr<State> state = state_;
    {
      absl::MutexLock lock(&state->mu);
      state->reactor = this;
    }
    request.stream = std::make_shared<Sink>(state);
    std::shared_ptr<ProxyCall> call = proxy.Start(
        std::move(request), [state](absl::StatusOr<ProxyResult> result) {
          absl::MutexLock lock(&state->mu);
          state->OnProxyDoneLocked(std::move(result));
        });
    absl::MutexLock lock(&state->mu);
    if (!state->done && !state->finishing) state->call = std::move(call);
  }

  void OnWriteDone(bool ok) override {
    std::shared_ptr<ProxyCall> resume;
    std::shared_ptr<ProxyCall> cancel;
    {
      absl::MutexLock lock(&state_->mu);
      state_->writing = false;
      if (!ok) {
        cancel = state_->EndLocked(
            absl::UnavailableError("the stream to the caller broke"));
      } else {
        if (state_->paused && state_->queued_bytes < kLowWater) {
          state_->paused = false;
          resume = state_->call;
        }
        state_->WriteNextLocked();
      }
    }
    if (resume != nullptr) resume->Resume();
    if (cancel != nullptr) cancel->Cancel();
  }

  void OnCancel() override {
    std::shared_ptr<ProxyCall> call;
    {
      absl::MutexLock lock(&state_->mu);
      call = state_->call;
    }
    if (call != nullptr) call->Cancel();  // Ends in OnProxyDoneLocked().
  }

  void OnDone() override {
    std::shared_ptr<ProxyCall> call;
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
      call = std::move(state_->call);
      state_->DropQueueLocked();
      state_->rpc = nullptr;
    }
    if (call != nullptr) call->Cancel();
    registration_.Reset();
    delete this;
  }

 private:
  const std::shared_ptr<State> state_;
  ActiveRpcs::Registration registration_;
};

}  // namespace

grpc::ServerUnaryReactor* StartCallReactor(grpc::CallbackServerContext* context,
                                           Proxy& proxy, ActiveRpcs& active,
                                           ProxyRequest request,
                                           std::unique_ptr<RequestContext> rpc,
                                           pb::CallResponse* response) {
  absl::StatusOr<ActiveRpcs::Registration> registration =
      active.Register(ActiveRpcs::Kind::kCall, rpc->caller().name, nullptr);
  if (!registration.ok()) {
    return FinishUnary(context, rpc->Deny(registration.status()));
  }
  auto* reactor = new CallReactor(*std::move(registration));
  reactor->Begin(proxy, std::move(request), std::move(rpc), response);
  return reactor;
}

grpc::ServerWriteReactor<pb::CallStreamResponse>* StartCallStreamReactor(
    Proxy& proxy, ActiveRpcs& active, ProxyRequest request,
    std::unique_ptr<RequestContext> rpc) {
  auto state = std::make_shared<CallStreamReactor::State>(active);
  absl::StatusOr<ActiveRpcs::Registration> registration =
      active.Register(ActiveRpcs::Kind::kCallStream, rpc->caller().name, state);
  if (!registration.ok()) {
    return new FinishedWriteReactor<pb::CallStreamResponse>(
        rpc->Deny(registration.status()));
  }
  {
    absl::MutexLock lock(&state->mu);
    state->rpc = std::move(rpc);
  }
  auto* reactor = new CallStreamReactor(state, *std::move(registration));
  reactor->Begin(proxy, std::move(request));
  return reactor;
}

}  // namespace tokenbroker
