#include "emulator/http_helpers.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tokenbroker::emulator::internal {

using json = nlohmann::json;

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void SetJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

void SetMessage(httplib::Response& res, int status, absl::string_view message) {
  SetJson(res, status, json{{"message", std::string(message)}});
}

void SetOAuthError(httplib::Response& res, int status, absl::string_view error,
                   absl::string_view description) {
  SetJson(res, status,
          json{{"error", std::string(error)},
               {"error_description", std::string(description)}});
}

std::string MediaType(const httplib::Request& req) {
  std::string type = req.get_header_value("Content-Type");
  type = std::string(absl::StripAsciiWhitespace(
      absl::string_view(type).substr(0, type.find(';'))));
  absl::AsciiStrToLower(&type);
  return type;
}

std::vector<std::pair<std::string, std::string>> DecodeUrlEncoded(
    absl::string_view text) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (absl::string_view pair : absl::StrSplit(text, '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    pairs.emplace_back(
        httplib::detail::decode_url(std::string(pair.substr(0, eq)), true),
        eq == absl::string_view::npos
            ? ""
            : httplib::detail::decode_url(std::string(pair.substr(eq + 1)),
                                          true));
  }
  return pairs;
}

absl::StatusOr<Params> ParseBodyParams(const httplib::Request& req) {
  Params params;
  const std::string type = MediaType(req);
  if (type == "application/x-www-form-urlencoded") {
    for (auto& [key, value] : DecodeUrlEncoded(req.body)) {
      if (!params.emplace(key, std::move(value)).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter ", key, " is given more than once"));
      }
    }
    return params;
  }
  if (type == "application/json") {
    const json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return absl::InvalidArgumentError("the body is not a JSON object");
    }
    for (const auto& [key, value] : body.items()) {
      if (value.is_null()) continue;
      if (!value.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter ", key, " must be a string"));
      }
      params[key] = value.get<std::string>();
    }
    return params;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported Content-Type \"", req.get_header_value("Content-Type"),
      "\": send application/x-www-form-urlencoded or application/json"));
}

std::string ParamOr(const Params& params, const std::string& key) {
  auto it = params.find(key);
  return it == params.end() ? "" : it->second;
}

void ClientCredentials(const httplib::Request& req, const Params& params,
                       std::string* id, std::string* secret, bool* basic) {
  *basic = false;
  auto it = params.find("client_id");
  if (it != params.end()) {
    *id = it->second;
    *secret = ParamOr(params, "client_secret");
    return;
  }
  const std::string auth = req.get_header_value("Authorization");
  if (absl::StartsWithIgnoreCase(auth, "basic ")) {
    std::string decoded;
    if (absl::Base64Unescape(absl::StripAsciiWhitespace(auth.substr(6)),
                             &decoded)) {
      const size_t colon = decoded.find(':');
      if (colon != std::string::npos) {
        *id = httplib::detail::decode_url(decoded.substr(0, colon), true);
        *secret = httplib::detail::decode_url(decoded.substr(colon + 1), true);
        *basic = true;
        return;
      }
    }
  }
  id->clear();
  secret->clear();
}

std::optional<std::string> BearerToken(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  if (!absl::StartsWithIgnoreCase(auth, "bearer ")) return std::nullopt;
  return std::string(absl::StripAsciiWhitespace(auth.substr(7)));
}

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    size_t extra = 0;
    if (c < 0x80) {
      extra = 0;
    } else if ((c >> 5) == 0x6) {
      extra = 1;
    } else if ((c >> 4) == 0xE) {
      extra = 2;
    } else if ((c >> 3) == 0x1E) {
      extra = 3;
    } else {
      return false;
    }
    if (i + extra >= s.size() && extra > 0) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += extra + 1;
  }
  return true;
}

std::string FormatTimestamp(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

std::string RandomToken(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
    // OpenSSL's CSPRNG does not fail on Linux once seeded; if it ever does,
    // refuse to hand out predictable tokens.
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

bool SecretsEqual(const std::string& a, const std::string& b) {
  return a.size() == b.size() &&
         CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string S256Challenge(absl::string_view verifier) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(verifier.data()),
         verifier.size(), digest);
  std::string out;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)),
      &out);
  return out;
}

bool IsPkceString(absl::string_view s, size_t min_size, size_t max_size,
                  bool pkce_verifier) {
  if (s.size() < min_size || s.size() > max_size) return false;
  for (const char c : s) {
    const bool ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                    c == '-' || c == '_' ||
                    (pkce_verifier && (c == '.' || c == '~'));
    if (!ok) return false;
  }
  return true;
}

std::string AppendQuery(
    const std::string& uri,
    const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out = uri;
  char separator = uri.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [name, value] : params) {
    if (value.empty()) continue;
    out += separator;
    out += httplib::detail::encode_query_param(name);
    out += '=';
    out += httplib::detail::encode_query_param(value);
    separator = '&';
  }
  return out;
}

}  // namespace tokenbroker::emulator::internal
