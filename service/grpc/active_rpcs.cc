#include "service/grpc/active_rpcs.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/common/log.h"

namespace tokenbroker {

ActiveRpcs::Registration& ActiveRpcs::Registration::operator=(
    Registration&& other) noexcept {
  if (this != &other) {
    Reset();
    owner_ = other.owner_;
    id_ = other.id_;
    other.owner_ = nullptr;
  }
  return *this;
}

void ActiveRpcs::Registration::Reset() {
  if (owner_ != nullptr) owner_->Unregister(id_);
  owner_ = nullptr;
}

ActiveRpcs::ActiveRpcs(TimerQueue& timers, LimitsConfig limits)
    : timers_(timers),
      limits_(limits),
      max_stream_buffer_bytes_(limits.max_stream_buffer_bytes) {}

ActiveRpcs::~ActiveRpcs() {
  // Every RPC has finished by now (the gRPC server is shut down first);
  // cancel what a registration leaked, so no timer reaches this object.
  absl::MutexLock lock(&mu_);
  for (const auto& [id, entry] : entries_) {
    if (entry.lifetime_timer != 0) timers_.Cancel(entry.lifetime_timer);
  }
}

absl::Status ActiveRpcs::Refuse(absl::string_view limit, absl::string_view what,
                                int64_t value) {
  ++refused_[std::string(limit)];
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " (limits.", limit, " = ", value,
                   "); retry later with backoff, or ask the broker's "
                   "operators to raise the limit"));
}

absl::StatusOr<ActiveRpcs::Registration> ActiveRpcs::Register(
    Kind kind, const std::string& caller, std::shared_ptr<Stream> stream) {
  uint64_t id;
  absl::Duration lifetime;
  {
    absl::MutexLock lock(&mu_);
    CallerCounts& counts = per_caller_[caller];
    if (kind == Kind::kWatch) {
      if (counts.watches >= limits_.max_watches_per_caller) {
        return Refuse("max_watches_per_caller",
                      absl::StrCat("caller ", caller,
                                   " has too many WatchToken streams open"),
                      limits_.max_watches_per_caller);
      }
      ++counts.watches;
    } else {
      if (calls_in_flight_ >= limits_.max_calls_in_flight) {
        return Refuse("max_calls_in_flight",
                      "the broker has too many Calls in flight",
                      limits_.max_calls_in_flight);
      }
      if (counts.calls >= limits_.max_calls_per_caller) {
        return Refuse(
            "max_calls_per_caller",
            absl::StrCat("caller ", caller, " has too many Calls in flight"),
            limits_.max_calls_per_caller);
      }
      ++counts.calls;
      ++calls_in_flight_;
    }
    id = next_id_++;
    entries_.emplace(id, Entry{kind, caller, std::move(stream), 0});
    lifetime = limits_.max_stream_lifetime;
  }
  if (kind != Kind::kCall) {
    TimerQueue::TimerId timer =
        timers_.Schedule(lifetime, [this, id] { EndAtLifetime(id); });
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it != entries_.end()) {
      it->second.lifetime_timer = timer;
    } else {
      timers_.Cancel(timer);  // Already unregistered.
    }
  }
  return Registration(this, id);
}

void ActiveRpcs::Unregister(uint64_t id) {
  TimerQueue::TimerId timer = 0;
  std::shared_ptr<Stream> stream;  // Released outside the lock.
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    Entry& entry = it->second;
    timer = entry.lifetime_timer;
    stream = std::move(entry.stream);
    auto counts = per_caller_.find(entry.caller);
    if (entry.kind == Kind::kWatch) {
      --counts->second.watches;
    } else {
      --counts->second.calls;
      --calls_in_flight_;
    }
    if (counts->second.watches == 0 && counts->second.calls == 0) {
      per_caller_.erase(counts);
    }
    entries_.erase(it);
  }
  if (timer != 0) timers_.Cancel(timer);
}

void ActiveRpcs::EndAtLifetime(uint64_t id) {
  std::shared_ptr<Stream> stream;
  absl::Duration lifetime;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    it->second.lifetime_timer = 0;
    stream = it->second.stream;
    lifetime = limits_.max_stream_lifetime;
    ++ended_["max_lifetime"];
  }
  if (stream == nullptr) return;
  stream->End(absl::UnavailableError(
      absl::StrCat("the stream reached the broker's maximum lifetime "
                   "(limits.max_stream_lifetime = ",
                   absl::FormatDuration(lifetime), "); open a new one")));
}

void ActiveRpcs::Recheck(const std::shared_ptr<const Config>& config) {
  std::vector<std::shared_ptr<Stream>> streams;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : entries_) {
      if (entry.stream != nullptr) streams.push_back(entry.stream);
    }
  }
  int64_t ended = 0;
  for (const std::shared_ptr<Stream>& stream : streams) {
    if (stream->Recheck(config)) ++ended;
  }
  if (ended > 0) {
    LogInfo("config reload ended streams whose caller or grant is gone",
            {{"streams", ended}});
    absl::MutexLock lock(&mu_);
    ended_["grant_removed"] += ended;
  }
}

void ActiveRpcs::SetLimits(const LimitsConfig& limits) {
  absl::MutexLock lock(&mu_);
  limits_ = limits;
  max_stream_buffer_bytes_.store(limits.max_stream_buffer_bytes);
}

absl::Status ActiveRpcs::ReserveStreamBytes(int64_t bytes) {
  int64_t limit = max_stream_buffer_bytes_.load(std::memory_order_relaxed);
  int64_t after =
      stream_buffer_bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  if (after <= limit) return absl::OkStatus();
  stream_buffer_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  return Refuse("max_stream_buffer_bytes",
                "the broker holds too much CallStream data for slow readers",
                limit);
}

void ActiveRpcs::ReleaseStreamBytes(int64_t bytes) {
  stream_buffer_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
}

ActiveRpcStats ActiveRpcs::stats() const {
  ActiveRpcStats stats;
  absl::MutexLock lock(&mu_);
  stats.calls_in_flight = calls_in_flight_;
  for (const auto& [id, entry] : entries_) {
    if (entry.kind == Kind::kWatch) ++stats.watches_open;
    if (entry.kind == Kind::kCallStream) ++stats.call_streams_open;
  }
  stats.stream_buffer_bytes = stream_buffer_bytes_.load();
  stats.stream_pauses = stream_pauses_.load();
  stats.refused = refused_;
  stats.streams_ended = ended_;
  return stats;
}

}  // namespace tokenbroker
