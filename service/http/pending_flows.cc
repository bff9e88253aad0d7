#include "service/http/pending_flows.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "service/common/process_hardening.h"
#include "service/common/status_macros.h"
#include "service/common/token_fingerprint.h"

namespace tokenbroker {
namespace {

constexpr size_t kRandomBytes = 32;

// Drops the queue entries whose map entry is gone (used before it expired)
// once they outnumber the live ones, so that a busy flow's queues stay
// bounded by max_pending too.
template <typename Map, typename Queue>
void Compact(const Map& map, Queue* queue) {
  if (queue->size() <= 2 * map.size() + 64) return;
  Queue kept;
  for (auto& entry : *queue) {
    if (map.count(entry.second) != 0) kept.push_back(std::move(entry));
  }
  queue->swap(kept);
}

bool SameHash(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() &&
         CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

absl::StatusOr<std::string> RandomUrlToken(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()),
                 static_cast<int>(raw.size())) != 1) {
    return absl::InternalError(
        "the random generator failed (OpenSSL RAND_bytes)");
  }
  std::string encoded;
  absl::WebSafeBase64Escape(raw, &encoded);
  OPENSSL_cleanse(raw.data(), raw.size());
  return encoded;
}

std::string PkceS256Challenge(absl::string_view verifier) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(verifier.data()),
         verifier.size(), digest);
  std::string challenge;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)),
      &challenge);
  return challenge;
}

MemoryPendingFlows::MemoryPendingFlows(const Clock& clock,
                                       PendingFlowsOptions options)
    : clock_(clock), options_(std::move(options)) {}

void MemoryPendingFlows::PurgeExpired(absl::Time now) {
  for (auto [queue, is_ticket] : {std::make_pair(&ticket_expiry_, true),
                                  std::make_pair(&state_expiry_, false)}) {
    while (!queue->empty() && queue->front().first <= now) {
      if (is_ticket) {
        tickets_.erase(queue->front().second);
      } else {
        states_.erase(queue->front().second);
      }
      queue->pop_front();
    }
  }
  Compact(tickets_, &ticket_expiry_);
  Compact(states_, &state_expiry_);
}

bool MemoryPendingFlows::Full() const {
  return static_cast<int64_t>(tickets_.size() + states_.size()) >=
         options_.max_pending;
}

int MemoryPendingFlows::pending() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(tickets_.size() + states_.size());
}

absl::StatusOr<MintedTicket> MemoryPendingFlows::MintTicket(
    std::string app, std::string minted_by) {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  PurgeExpired(now);
  if (Full()) {
    return absl::ResourceExhaustedError(
        "too many sign-in links and sign-ins are pending (oauth.max_pending); "
        "wait for some to be used or to expire, or raise the limit");
  }
  TB_ASSIGN_OR_RETURN(std::string ticket, RandomUrlToken(kRandomBytes));
  const absl::Time expires_at = now + options_.start_link_ttl;
  std::string key = Sha256Hex(ticket);
  tickets_[key] = StartTicket{std::move(app), std::move(minted_by), expires_at};
  ticket_expiry_.emplace_back(expires_at, std::move(key));
  return MintedTicket{std::move(ticket), expires_at};
}

void MemoryPendingFlows::MintTicket(std::string app, std::string minted_by,
                                    MintCallback done) {
  done(MintTicket(std::move(app), std::move(minted_by)));
}

absl::StatusOr<StartTicket> MemoryPendingFlows::FindTicket(
    const std::string& key, absl::Time now) {
  auto it = tickets_.find(key);
  if (it == tickets_.end()) {
    return absl::NotFoundError("the sign-in link is unknown or already used");
  }
  if (it->second.expires_at <= now) {
    tickets_.erase(it);
    return absl::DeadlineExceededError("the sign-in link has expired");
  }
  return it->second;
}

absl::StatusOr<StartTicket> MemoryPendingFlows::PeekTicket(
    absl::string_view ticket) {
  const absl::Time now = clock_.Now();
  const std::string key = Sha256Hex(ticket);
  absl::MutexLock lock(&mu_);
  absl::StatusOr<StartTicket> found = FindTicket(key, now);
  PurgeExpired(now);
  return found;
}

absl::StatusOr<StartedSignIn> MemoryPendingFlows::BeginSignIn(
    absl::string_view ticket, SignInSetup setup) {
  const absl::Time now = clock_.Now();
  const std::string ticket_key = Sha256Hex(ticket);
  absl::MutexLock lock(&mu_);
  absl::StatusOr<StartTicket> found = FindTicket(ticket_key, now);
  PurgeExpired(now);
  TB_RETURN_IF_ERROR(found.status());

  StartedSignIn started;
  TB_ASSIGN_OR_RETURN(started.state, RandomUrlToken(kRandomBytes));
  TB_ASSIGN_OR_RETURN(started.cookie, RandomUrlToken(kRandomBytes));
  TB_ASSIGN_OR_RETURN(started.code_verifier, RandomUrlToken(kRandomBytes));
  started.expires_at = now + options_.state_ttl;

  // The ticket's place goes to the state: the count does not grow.
  tickets_.erase(ticket_key);
  State state;
  state.sign_in.app = std::move(found->app);
  state.sign_in.minted_by = std::move(found->minted_by);
  state.sign_in.setup = std::move(setup);
  state.sign_in.code_verifier = started.code_verifier;
  state.sign_in.expires_at = started.expires_at;
  state.cookie_sha256 = Sha256Hex(started.cookie);
  std::string key = Sha256Hex(started.state);
  states_[key] = std::move(state);
  state_expiry_.emplace_back(started.expires_at, std::move(key));
  return started;
}

SignInLookup MemoryPendingFlows::TakeSignIn(
    absl::string_view state,
    const std::vector<std::pair<std::string, std::string>>& cookies) {
  const absl::Time now = clock_.Now();
  const std::string key = Sha256Hex(state);
  std::optional<State> taken;
  {
    absl::MutexLock lock(&mu_);
    auto it = states_.find(key);
    if (it != states_.end()) {
      taken = std::move(it->second);
      states_.erase(it);
    }
    PurgeExpired(now);
  }
  if (!taken.has_value()) return SignInLookup{};  // kUnknown
  return CheckTakenSignIn(std::move(taken->sign_in), taken->cookie_sha256, now,
                          cookies);
}

SignInLookup CheckTakenSignIn(
    PendingSignIn sign_in, absl::string_view cookie_sha256, absl::Time now,
    const std::vector<std::pair<std::string, std::string>>& cookies) {
  SignInLookup lookup;
  if (sign_in.expires_at <= now) {
    lookup.outcome = SignInLookup::Outcome::kExpired;
  } else {
    lookup.outcome = SignInLookup::Outcome::kNoCookie;
    // A browser may hold more than one cookie of that name (another path,
    // an injected one): the state's own must be among them.
    for (const auto& [name, value] : cookies) {
      if (name != sign_in.setup.cookie_name) continue;
      if (SameHash(Sha256Hex(value), cookie_sha256)) {
        lookup.outcome = SignInLookup::Outcome::kOk;
        break;
      }
      lookup.outcome = SignInLookup::Outcome::kCookieMismatch;
    }
  }
  if (lookup.outcome != SignInLookup::Outcome::kOk) {
    ClearSecret(&sign_in.code_verifier);
  }
  lookup.sign_in = std::move(sign_in);
  return lookup;
}

}  // namespace tokenbroker
