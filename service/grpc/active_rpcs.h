#ifndef TOKENBROKER_SERVICE_GRPC_ACTIVE_RPCS_H_
#define TOKENBROKER_SERVICE_GRPC_ACTIVE_RPCS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "service/common/timer_queue.h"
#include "service/config/config.h"
#include "service/metrics/broker_metrics.h"

namespace tokenbroker {

// The Calls in flight and the streams open (WatchToken, CallStream), per
// caller: enforces the `limits` section, ends streams at
// limits.max_stream_lifetime, and on every config reload re-checks each
// open stream's caller and grant, so that removing a key or a grant cuts
// its streams off at once.
//
// Thread-safe. Streams are told to end outside the registry's lock.
class ActiveRpcs {
 public:
  enum class Kind { kCall, kCallStream, kWatch };

  // What a registered stream offers the registry. Implementations outlive
  // their reactor safely (they hold its shared state, not the reactor).
  class Stream {
   public:
    virtual ~Stream() = default;
    // Checks the stream's caller and grant under `config`; if they no
    // longer hold, ends the stream with the error (audited) and returns
    // true.
    virtual bool Recheck(const std::shared_ptr<const Config>& config) = 0;
    // Ends the stream with `status` unless it has ended already.
    virtual void End(const absl::Status& status) = 0;
  };

  // One registered RPC; unregisters when destroyed. Move-only.
  class Registration {
   public:
    Registration() = default;
    Registration(Registration&& other) noexcept
        : owner_(other.owner_), id_(other.id_) {
      other.owner_ = nullptr;
    }
    Registration& operator=(Registration&& other) noexcept;
    ~Registration() { Reset(); }
    void Reset();

   private:
    friend class ActiveRpcs;
    Registration(ActiveRpcs* owner, uint64_t id) : owner_(owner), id_(id) {}
    ActiveRpcs* owner_ = nullptr;
    uint64_t id_ = 0;
  };

  ActiveRpcs(TimerQueue& timers, LimitsConfig limits);
  ~ActiveRpcs();

  // Registers one RPC of `caller` (a `stream` for kCallStream and kWatch).
  // Errors: RESOURCE_EXHAUSTED naming the limit that is reached.
  absl::StatusOr<Registration> Register(Kind kind, const std::string& caller,
                                        std::shared_ptr<Stream> stream);

  // Re-checks every open stream under a newly loaded config.
  void Recheck(const std::shared_ptr<const Config>& config);

  // Applies new limits to later registrations.
  void SetLimits(const LimitsConfig& limits);

  // Reserves `bytes` of the CallStream buffer budget. Errors:
  // RESOURCE_EXHAUSTED naming limits.max_stream_buffer_bytes.
  absl::Status ReserveStreamBytes(int64_t bytes);
  void ReleaseStreamBytes(int64_t bytes);
  // A CallStream paused its upstream transfer for a slow reader.
  void CountStreamPause() {
    stream_pauses_.fetch_add(1, std::memory_order_relaxed);
  }

  ActiveRpcStats stats() const;

 private:
  struct Entry {
    Kind kind;
    std::string caller;
    std::shared_ptr<Stream> stream;
    TimerQueue::TimerId lifetime_timer = 0;
  };
  struct CallerCounts {
    int calls = 0;
    int watches = 0;
  };

  void Unregister(uint64_t id);
  void EndAtLifetime(uint64_t id);
  absl::Status Refuse(absl::string_view limit, absl::string_view what,
                      int64_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  TimerQueue& timers_;
  mutable absl::Mutex mu_;
  LimitsConfig limits_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, CallerCounts> per_caller_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int calls_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> refused_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> ended_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> stream_buffer_bytes_{0};
  std::atomic<int64_t> max_stream_buffer_bytes_;
  std::atomic<int64_t> stream_pauses_{0};
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_ACTIVE_RPCS_H_
