#include "service/proxy/token_scrubber.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

namespace tokenbroker {
namespace {

// Overwrites a buffer that held (part of) the secret.
void Cleanse(std::string& buffer) {
  if (!buffer.empty()) OPENSSL_cleanse(buffer.data(), buffer.size());
}

}  // namespace

TokenScrubber::TokenScrubber(absl::string_view secret) : secret_(secret) {}

TokenScrubber::~TokenScrubber() { Cleanse(secret_); }

size_t TokenScrubber::ScrubText(std::string& text) const {
  if (secret_.empty()) return 0;
  size_t found = text.find(secret_);
  if (found == std::string::npos) return 0;
  std::string scrubbed;
  scrubbed.reserve(text.size());
  size_t count = 0;
  size_t from = 0;
  for (; found != std::string::npos; found = text.find(secret_, from)) {
    scrubbed.append(text, from, found - from);
    scrubbed.append(kTokenRemovedMarker.data(), kTokenRemovedMarker.size());
    from = found + secret_.size();
    ++count;
  }
  scrubbed.append(text, from, std::string::npos);
  Cleanse(text);  // It held the secret.
  text = std::move(scrubbed);
  return count;
}

size_t TokenScrubber::ScrubHeaders(HttpHeaders& headers) const {
  if (secret_.empty()) return 0;
  size_t count = 0;
  HttpHeaders kept;
  kept.reserve(headers.size());
  for (auto& header : headers) {
    std::string name = header.first;
    if (size_t in_name = ScrubText(name); in_name > 0) {
      count += in_name + ScrubText(header.second);
      Cleanse(header.first);
      continue;
    }
    count += ScrubText(header.second);
    kept.push_back(std::move(header));
  }
  headers = std::move(kept);
  return count;
}

StreamingTokenScrubber::StreamingTokenScrubber(absl::string_view secret)
    : secret_(secret), failure_(secret.size(), 0) {
  // Knuth-Morris-Pratt failure function: lets the matcher carry its state
  // (how much of the secret the latest bytes spell) from one piece to the
  // next without rescanning, and finds the same left-most, non-overlapping
  // occurrences as std::string::find.
  for (size_t i = 1, k = 0; i < secret_.size(); ++i) {
    while (k > 0 && secret_[i] != secret_[k]) k = failure_[k - 1];
    if (secret_[i] == secret_[k]) ++k;
    failure_[i] = k;
  }
  held_.assign(secret_.size(), '\0');
}

StreamingTokenScrubber::~StreamingTokenScrubber() {
  Cleanse(secret_);
  Cleanse(held_);
  std::fill(failure_.begin(), failure_.end(), 0);
}

size_t StreamingTokenScrubber::Write(absl::string_view piece,
                                     std::string* out) {
  if (secret_.empty()) {
    out->append(piece.data(), piece.size());
    return 0;
  }
  // The text is held_ followed by piece; positions below are in that text.
  // The matcher's state, the length of the secret's prefix that the text
  // ends with, starts as the number of held bytes by construction.
  const size_t held = held_size_;
  const size_t total = held + piece.size();
  auto emit = [&](size_t from, size_t to) {
    if (from < held) {
      size_t end = std::min(to, held);
      out->append(held_, from, end - from);
      from = end;
    }
    if (from < to) out->append(piece.data() + (from - held), to - from);
  };
  size_t state = held;
  size_t emitted = 0;
  size_t count = 0;
  for (size_t i = 0; i < piece.size(); ++i) {
    const char c = piece[i];
    while (state > 0 && secret_[state] != c) state = failure_[state - 1];
    if (secret_[state] == c) ++state;
    if (state == secret_.size()) {
      const size_t end = held + i + 1;
      emit(emitted, end - secret_.size());
      out->append(kTokenRemovedMarker.data(), kTokenRemovedMarker.size());
      emitted = end;
      state = 0;  // No overlap: matching starts afresh after an occurrence.
      ++count;
    }
  }
  // The last `state` bytes may still become the secret: hold them back;
  // nothing before them can.
  const size_t keep_from = total - state;
  emit(emitted, keep_from);
  // The new held bytes are a suffix of the text: the end of the old held
  // bytes (moved to the front) and of the piece. They stay in held_'s fixed
  // buffer so that no copy of a prefix of the secret is left in freed
  // memory.
  if (keep_from < held) {
    std::memmove(held_.data(), held_.data() + keep_from, held - keep_from);
    if (!piece.empty()) {
      std::memcpy(held_.data() + (held - keep_from), piece.data(),
                  piece.size());
    }
  } else if (state > 0) {
    std::memcpy(held_.data(), piece.data() + (keep_from - held), state);
  }
  held_size_ = state;
  replacements_ += count;
  return count;
}

void StreamingTokenScrubber::Finish(std::string* out) {
  out->append(held_, 0, held_size_);
  held_size_ = 0;
  Cleanse(held_);
}

}  // namespace tokenbroker
