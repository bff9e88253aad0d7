#ifndef TOKENBROKER_SERVICE_PROXY_TOKEN_SCRUBBER_H_
#define TOKENBROKER_SERVICE_PROXY_TOKEN_SCRUBBER_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "service/upstream/http_client.h"

namespace tokenbroker {

// What replaces the secret wherever a scrubber finds it.
inline constexpr absl::string_view kTokenRemovedMarker =
    "[token removed by the broker]";

// Removes an exact secret (the access token a Call injected) from what an
// upstream response sends back, so that a caller allowed only to Call (its
// grant has get_token: false) never sees the token, even from an endpoint
// that echoes request headers. Every occurrence of the secret's exact bytes
// is replaced with kTokenRemovedMarker ("Bearer <token>" becomes
// "Bearer [token removed by the broker]"); occurrences are found left to
// right without overlap, as std::string::find would. Other encodings of the
// secret (percent-, base64- or JSON-escaped) are not recognized.
//
// An empty secret matches nothing. The scrubber keeps a copy of the secret
// and clears it on destruction. Const methods are thread-safe.
class TokenScrubber {
 public:
  explicit TokenScrubber(absl::string_view secret);
  ~TokenScrubber();
  TokenScrubber(const TokenScrubber&) = delete;
  TokenScrubber& operator=(const TokenScrubber&) = delete;

  // Replaces the secret in every header value; a header whose name contains
  // the secret is dropped (a marker is not a valid name). Keeps the order of
  // the rest. Returns the number of replacements (a dropped header counts
  // once per occurrence in its name, plus those in its value).
  size_t ScrubHeaders(HttpHeaders& headers) const;

  // Replaces the secret in `text` (a whole body, or any one string).
  // Returns the number of replacements.
  size_t ScrubText(std::string& text) const;

 private:
  std::string secret_;
};

// The same for a body that arrives in pieces: an occurrence split across
// pieces (even over many pieces of one byte) is still replaced. Between
// calls it holds back the longest end of what it was given that could still
// begin the secret (at most secret.size() - 1 bytes); everything else is
// passed on at once. The output of Write() calls followed by Finish() equals
// TokenScrubber::ScrubText() of the concatenated pieces.
//
// One instance per body. Not thread-safe: calls must be serialized.
class StreamingTokenScrubber {
 public:
  explicit StreamingTokenScrubber(absl::string_view secret);
  ~StreamingTokenScrubber();
  StreamingTokenScrubber(const StreamingTokenScrubber&) = delete;
  StreamingTokenScrubber& operator=(const StreamingTokenScrubber&) = delete;

  // Scrubs `piece` (may be empty) and appends to `*out` what can be passed
  // on now. Returns the number of replacements made by this call.
  size_t Write(absl::string_view piece, std::string* out);

  // Appends the bytes held back (which did not become the secret) to
  // `*out`. Call once at the end of the body; after it, the scrubber is
  // ready for a new body (its replacement count is kept).
  void Finish(std::string* out);

  // Bytes given to Write() and not yet passed on.
  size_t held_back() const { return held_size_; }

  // Replacements made since construction.
  size_t replacements() const { return replacements_; }

 private:
  std::string secret_;
  // failure_[i]: length of the longest proper prefix of secret_[0..i] that
  // is also its suffix (Knuth-Morris-Pratt).
  std::vector<size_t> failure_;
  // held_[0, held_size_): the last bytes seen, exactly the longest suffix
  // that is a proper prefix of the secret (the matcher's state). A buffer of
  // secret_.size() bytes, allocated once and cleared on destruction.
  std::string held_;
  size_t held_size_ = 0;
  size_t replacements_ = 0;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_PROXY_TOKEN_SCRUBBER_H_
