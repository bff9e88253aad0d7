#include "service/common/path_segments.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "service/common/status_macros.h"

namespace tokenbroker {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes one UTF-8 sequence at the start of `bytes` into `*code_point` and
// returns its length, or 0 if it is not well-formed (RFC 3629, table 3-7 of
// the Unicode standard): the second byte's range rules out overlong forms,
// surrogates and code points above U+10FFFF.
size_t DecodeUtf8(absl::string_view bytes, uint32_t* code_point) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
  unsigned char b0 = byte(0);
  if (b0 < 0x80) {
    *code_point = b0;
    return 1;
  }
  size_t length;
  unsigned char low = 0x80, high = 0xbf;  // Range of the second byte.
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    length = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    length = 3;
    if (b0 == 0xe0) low = 0xa0;   // Overlong below U+0800.
    if (b0 == 0xed) high = 0x9f;  // Surrogates U+D800..U+DFFF.
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    length = 4;
    if (b0 == 0xf0) low = 0x90;   // Overlong below U+10000.
    if (b0 == 0xf4) high = 0x8f;  // Above U+10FFFF.
  } else {
    return 0;  // Continuation byte, 0xc0/0xc1 (overlong) or 0xf5..0xff.
  }
  if (bytes.size() < length) return 0;
  if (byte(1) < low || byte(1) > high) return 0;
  uint32_t value = b0 & (0xff >> (length + 1));
  value = (value << 6) | (byte(1) & 0x3f);
  for (size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
    value = (value << 6) | (byte(i) & 0x3f);
  }
  *code_point = value;
  return length;
}

// Characters that NFKC (or NFC) normalization maps to text containing '.',
// '/', '\' or ';'. A server that normalizes would see a dot segment, a
// separator or a path parameter where the broker saw a plain name.
bool NormalizesToPathSyntax(uint32_t c) {
  switch (c) {
    case 0x037e:  // GREEK QUESTION MARK -> ';'
    case 0x2024:  // ONE DOT LEADER -> '.'
    case 0x2025:  // TWO DOT LEADER -> '..'
    case 0x2026:  // HORIZONTAL ELLIPSIS -> '...'
    case 0xfe19:  // PRESENTATION FORM FOR VERTICAL HORIZONTAL ELLIPSIS
    case 0xfe30:  // PRESENTATION FORM FOR VERTICAL TWO DOT LEADER
    case 0xfe52:  // SMALL FULL STOP -> '.'
    case 0xfe54:  // SMALL SEMICOLON -> ';'
    case 0xfe68:  // SMALL REVERSE SOLIDUS -> '\'
    case 0xff0e:  // FULLWIDTH FULL STOP -> '.'
    case 0xff0f:  // FULLWIDTH SOLIDUS -> '/'
    case 0xff1b:  // FULLWIDTH SEMICOLON -> ';'
    case 0xff3c:  // FULLWIDTH REVERSE SOLIDUS -> '\'
      return true;
    default:
      return false;
  }
}

// Checks one level of a segment's decoding (level 0 is the raw text).
absl::Status CheckSegmentLevel(absl::string_view text, int level) {
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == ';') {
      return absl::InvalidArgumentError(
          "';' (a path parameter) is not allowed in a path segment, "
          "encoded or not: servers such as Java servlet containers drop what "
          "follows it, so '..;' reads as '..'");
    }
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          "NUL, CR, LF and other control characters are not allowed, even "
          "encoded");
    }
    if (level > 0 && (c == '/' || c == '\\')) {
      return absl::InvalidArgumentError(
          "encoded '/' or '\\' is not allowed in a segment");
    }
  }
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  if (trimmed == "." || trimmed == "..") {
    return absl::InvalidArgumentError(
        "'.' and '..' segments are not allowed, even encoded");
  }
  if (level == 0) return absl::OkStatus();  // Printable ASCII, checked.
  while (!text.empty()) {
    uint32_t code_point = 0;
    size_t length = DecodeUtf8(text, &code_point);
    if (length == 0) {
      return absl::InvalidArgumentError(
          "percent-escapes must decode to valid UTF-8 (no overlong forms "
          "such as %c0%ae, no surrogates, nothing above U+10FFFF, no "
          "truncated sequences)");
    }
    if (NormalizesToPathSyntax(code_point)) {
      return absl::InvalidArgumentError(
          "characters that Unicode normalization turns into '.', '/', '\\' "
          "or ';' (such as U+FF0E FULLWIDTH FULL STOP) are not allowed");
    }
    text.remove_prefix(length);
  }
  return absl::OkStatus();
}

// Checks a raw segment through every level of percent-encoding and returns
// it decoded once.
absl::StatusOr<std::string> DecodeSegment(absl::string_view raw) {
  std::string current(raw);
  std::string decoded;
  std::string once;
  for (int level = 0; level < kMaxPercentDecodeLevels; ++level) {
    TB_RETURN_IF_ERROR(CheckSegmentLevel(current, level));
    if (level == 1) once = current;
    if (current.find('%') == std::string::npos) {
      return level == 0 ? current : once;
    }
    if (!PercentDecodeOnce(current, &decoded)) {
      return absl::InvalidArgumentError(
          "'%' must be followed by two hex digits");
    }
    current.swap(decoded);
  }
  return absl::InvalidArgumentError("too many levels of percent-encoding");
}

}  // namespace

bool PercentDecodeOnce(absl::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = HexValue(in[i + 1]);
    int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool IsValidUtf8(absl::string_view bytes) {
  while (!bytes.empty()) {
    uint32_t code_point = 0;
    size_t length = DecodeUtf8(bytes, &code_point);
    if (length == 0) return false;
    bytes.remove_prefix(length);
  }
  return true;
}

absl::StatusOr<std::vector<std::string>> SplitPathSegments(
    absl::string_view target) {
  if (target.empty() || target[0] != '/') {
    return absl::InvalidArgumentError(
        "must start with '/' (no scheme or host)");
  }
  if (absl::StartsWith(target, "//")) {
    return absl::InvalidArgumentError("'//' would name a host");
  }
  absl::string_view path = target.substr(0, target.find('?'));
  for (char c : path) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return absl::InvalidArgumentError(
          "only printable ASCII without spaces; percent-encode the rest");
    }
    if (c == '\\') return absl::InvalidArgumentError("'\\' is not allowed");
    if (c == '#') {
      return absl::InvalidArgumentError("a fragment ('#') is not allowed");
    }
    if (c == '@') {
      return absl::InvalidArgumentError(
          "'@' is not allowed (it reads as userinfo)");
    }
  }
  std::vector<std::string> segments;
  for (absl::string_view raw : absl::StrSplit(path.substr(1), '/')) {
    absl::StatusOr<std::string> segment = DecodeSegment(raw);
    if (!segment.ok()) return segment.status();
    segments.push_back(*std::move(segment));
  }
  return segments;
}

}  // namespace tokenbroker
