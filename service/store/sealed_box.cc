#include "service/store/sealed_box.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "service/common/process_hardening.h"
#include "service/common/read_file.h"
#include "service/common/status_macros.h"

namespace tokenbroker {
namespace {

constexpr absl::string_view kEnvelopePrefix = "tbx1.";
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
// A key file is a few dozen characters; anything much larger is not one.
constexpr size_t kMaxKeyFileBytes = 4096;

// Clears a secret buffer when it goes out of scope, whatever the return path.
class CleanseOnExit {
 public:
  explicit CleanseOnExit(std::string& secret) : secret_(secret) {}
  CleanseOnExit(const CleanseOnExit&) = delete;
  CleanseOnExit& operator=(const CleanseOnExit&) = delete;
  ~CleanseOnExit() { ClearSecret(&secret_); }

 private:
  std::string& secret_;
};

struct CipherContextDeleter {
  void operator()(EVP_CIPHER_CTX* context) const {
    EVP_CIPHER_CTX_free(context);
  }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextDeleter>;

const unsigned char* Bytes(absl::string_view data) {
  return reinterpret_cast<const unsigned char*>(data.data());
}
unsigned char* MutableBytes(std::string& data) {
  return reinterpret_cast<unsigned char*>(&data[0]);
}

bool IsKeyIdChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '_' || c == '-';
}

// What GCM authenticates besides the caller's associated data: the format
// and the key id, so that neither can be changed without detection. Key ids
// hold no NUL, so the concatenation is unambiguous.
std::string FullAad(absl::string_view key_id, absl::string_view aad) {
  return absl::StrCat("tbx1", absl::string_view("\0", 1), key_id,
                      absl::string_view("\0", 1), aad);
}

// Canonical unpadded base64url only: decoding then encoding again must give
// the same text, so no two envelopes decode to the same bytes.
bool DecodeBase64Url(absl::string_view text, std::string* bytes) {
  if (!absl::WebSafeBase64Unescape(text, bytes)) return false;
  return absl::WebSafeBase64Escape(*bytes) == text;
}

struct Envelope {
  absl::string_view key_id;
  std::string nonce;
  std::string sealed;  // ciphertext followed by the tag
};

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("sealed value is malformed: ", what));
}

absl::StatusOr<Envelope> ParseEnvelope(absl::string_view text) {
  if (!absl::StartsWith(text, kEnvelopePrefix)) {
    return Malformed("it does not start with \"tbx1.\"");
  }
  absl::string_view rest = text.substr(kEnvelopePrefix.size());
  // The key id may contain dots; base64url never does: split from the right.
  size_t last_dot = rest.rfind('.');
  if (last_dot == absl::string_view::npos || last_dot == 0) {
    return Malformed("expected tbx1.<key id>.<nonce>.<ciphertext>");
  }
  size_t middle_dot = rest.rfind('.', last_dot - 1);
  if (middle_dot == absl::string_view::npos) {
    return Malformed("expected tbx1.<key id>.<nonce>.<ciphertext>");
  }
  Envelope envelope;
  envelope.key_id = rest.substr(0, middle_dot);
  if (!ValidateSealKeyId(envelope.key_id).ok()) {
    return Malformed("the key id is not 1-32 characters of [A-Za-z0-9._-]");
  }
  absl::string_view nonce_text =
      rest.substr(middle_dot + 1, last_dot - middle_dot - 1);
  absl::string_view sealed_text = rest.substr(last_dot + 1);
  if (!DecodeBase64Url(nonce_text, &envelope.nonce) ||
      envelope.nonce.size() != kNonceBytes) {
    return Malformed("the nonce is not 12 bytes of unpadded base64url");
  }
  if (sealed_text.size() > (kMaxSealedPlaintextBytes + kTagBytes) / 3 * 4 + 4) {
    return Malformed("the ciphertext is too long");
  }
  if (!DecodeBase64Url(sealed_text, &envelope.sealed)) {
    return Malformed("the ciphertext is not unpadded base64url");
  }
  if (envelope.sealed.size() < kTagBytes) {
    return Malformed("the ciphertext is shorter than its tag");
  }
  return envelope;
}

// Sets `context` up for AES-256-GCM, sealing (`encrypt` 1) or opening (0)
// with `key` and `nonce`, and feeds it the associated data.
bool StartGcm(EVP_CIPHER_CTX* context, int encrypt, absl::string_view key,
              absl::string_view nonce, absl::string_view aad) {
  int length = 0;
  return context != nullptr &&
         EVP_CipherInit_ex(context, EVP_aes_256_gcm(), nullptr, nullptr,
                           nullptr, encrypt) == 1 &&
         EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_IVLEN, kNonceBytes,
                             nullptr) == 1 &&
         EVP_CipherInit_ex(context, nullptr, nullptr, Bytes(key), Bytes(nonce),
                           encrypt) == 1 &&
         EVP_CipherUpdate(context, nullptr, &length, Bytes(aad),
                          static_cast<int>(aad.size())) == 1;
}

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat("AES-256-GCM ", what, " failed"));
}

}  // namespace

SealKey::SealKey(std::string key_id, std::string key_bytes)
    : id(std::move(key_id)), bytes(key_bytes) {
  ClearSecret(&key_bytes);
}

SealKey::SealKey(SealKey&& other) : id(other.id), bytes(other.bytes) {
  ClearSecret(&other.bytes);
}

SealKey& SealKey::operator=(const SealKey& other) {
  if (this != &other) {
    ClearSecret(&bytes);
    id = other.id;
    bytes = other.bytes;
  }
  return *this;
}

SealKey& SealKey::operator=(SealKey&& other) {
  if (this != &other) {
    *this = static_cast<const SealKey&>(other);
    ClearSecret(&other.bytes);
  }
  return *this;
}

SealKey::~SealKey() { ClearSecret(&bytes); }

absl::Status ValidateSealKeyId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxSealKeyIdLength ||
      !std::all_of(id.begin(), id.end(), IsKeyIdChar)) {
    return absl::InvalidArgumentError(
        "a seal key id must be 1-32 characters of [A-Za-z0-9._-]");
  }
  return absl::OkStatus();
}

absl::StatusOr<SealKey> MakeSealKey(std::string id, std::string bytes) {
  CleanseOnExit cleanse(bytes);
  TB_RETURN_IF_ERROR(ValidateSealKeyId(id));
  if (bytes.size() != kSealKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("seal key '", id, "' is ", bytes.size(),
                     " bytes long; it must be ", kSealKeyBytes));
  }
  return SealKey(std::move(id), bytes);
}

absl::StatusOr<SealKey> ReadSealKeyFile(std::string id,
                                        const std::string& path) {
  if (absl::Status status = ValidateSealKeyId(id); !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("seal key file ", path, ": ", status.message()));
  }
  absl::StatusOr<std::string> content = ReadFile(path, kMaxKeyFileBytes);
  if (!content.ok()) {
    return absl::Status(
        content.status().code(),
        absl::StrCat("seal key '", id, "': ", content.status().message()));
  }
  CleanseOnExit cleanse_content(*content);
  absl::string_view text = absl::StripAsciiWhitespace(*content);
  auto invalid = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(
        "seal key file ", path, " (key '", id, "'): ", what,
        "; expected 32 random bytes as 64 hex digits (openssl rand -hex 32) "
        "or 44 base64 characters (openssl rand -base64 32)"));
  };
  std::string bytes;
  bytes.reserve(kSealKeyBytes + 3);
  CleanseOnExit cleanse_bytes(bytes);
  if (text.size() == 2 * kSealKeyBytes) {
    if (!std::all_of(text.begin(), text.end(), [](char c) {
          return absl::ascii_isxdigit(static_cast<unsigned char>(c));
        })) {
      return invalid("64 characters that are not all hex digits");
    }
    for (size_t i = 0; i < text.size(); i += 2) {
      auto nibble = [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c))
                   ? c - '0'
                   : absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' +
                         10;
      };
      bytes.push_back(
          static_cast<char>(nibble(text[i]) << 4 | nibble(text[i + 1])));
    }
  } else if (text.size() == 44) {
    bool alphabet = std::all_of(text.begin(), text.end() - 1, [](char c) {
      return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' ||
             c == '/';
    });
    if (!alphabet || text.back() != '=' ||
        !absl::Base64Unescape(text, &bytes) || bytes.size() != kSealKeyBytes) {
      return invalid("44 characters that are not standard base64 of 32 bytes");
    }
  } else if (text.empty()) {
    return invalid("the file is empty");
  } else {
    return invalid(absl::StrCat("found ", text.size(), " characters"));
  }
  if (std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; })) {
    return invalid("the key is all zero bytes");
  }
  return SealKey(std::move(id), bytes);
}

KeyRing::KeyRing(std::vector<SealKey> keys) : keys_(std::move(keys)) {}

absl::StatusOr<std::shared_ptr<const KeyRing>> KeyRing::Create(
    std::vector<SealKey> keys) {
  if (keys.empty()) {
    return absl::InvalidArgumentError("a key ring needs at least one key");
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    TB_RETURN_IF_ERROR(ValidateSealKeyId(keys[i].id));
    if (keys[i].bytes.size() != kSealKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("seal key '", keys[i].id, "' is ", keys[i].bytes.size(),
                       " bytes long; it must be ", kSealKeyBytes));
    }
    for (size_t j = 0; j < i; ++j) {
      if (keys[j].id == keys[i].id) {
        return absl::InvalidArgumentError(absl::StrCat(
            "two seal keys have the id '", keys[i].id, "'; ids must differ"));
      }
    }
  }
  return std::shared_ptr<const KeyRing>(new KeyRing(std::move(keys)));
}

const SealKey* KeyRing::Find(absl::string_view id) const {
  for (const SealKey& key : keys_) {
    if (key.id == id) return &key;
  }
  return nullptr;
}

std::vector<std::string> KeyRing::key_ids() const {
  std::vector<std::string> ids;
  ids.reserve(keys_.size());
  for (const SealKey& key : keys_) ids.push_back(key.id);
  return ids;
}

absl::StatusOr<std::string> KeyRing::Seal(absl::string_view plaintext,
                                          absl::string_view aad) const {
  if (plaintext.size() > kMaxSealedPlaintextBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot seal ", plaintext.size(), " bytes; at most ",
                     kMaxSealedPlaintextBytes));
  }
  const SealKey& key = keys_.front();
  std::string nonce(kNonceBytes, '\0');
  if (RAND_bytes(MutableBytes(nonce), kNonceBytes) != 1) {
    return OpenSslError("nonce generation (RAND_bytes)");
  }
  std::string sealed(plaintext.size() + kTagBytes, '\0');
  CipherContext context(EVP_CIPHER_CTX_new());
  int length = 0;
  int final_length = 0;
  if (!StartGcm(context.get(), 1, key.bytes, nonce, FullAad(key.id, aad)) ||
      EVP_EncryptUpdate(context.get(), MutableBytes(sealed), &length,
                        Bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(context.get(), MutableBytes(sealed) + length,
                          &final_length) != 1 ||
      static_cast<size_t>(length + final_length) != plaintext.size() ||
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          MutableBytes(sealed) + plaintext.size()) != 1) {
    return OpenSslError("encryption");
  }
  return absl::StrCat(kEnvelopePrefix, key.id, ".",
                      absl::WebSafeBase64Escape(nonce), ".",
                      absl::WebSafeBase64Escape(sealed));
}

absl::StatusOr<std::string> KeyRing::Open(absl::string_view envelope_text,
                                          absl::string_view aad) const {
  TB_ASSIGN_OR_RETURN(Envelope envelope, ParseEnvelope(envelope_text));
  const SealKey* key = Find(envelope.key_id);
  if (key == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("sealed with key id '", envelope.key_id,
                     "', which is not in the key ring (it holds: ",
                     absl::StrJoin(key_ids(), ", "),
                     "); add that key's file back to open it"));
  }
  const size_t ciphertext_size = envelope.sealed.size() - kTagBytes;
  std::string plaintext(ciphertext_size, '\0');
  CipherContext context(EVP_CIPHER_CTX_new());
  int length = 0;
  int final_length = 0;
  if (!StartGcm(context.get(), 0, key->bytes, envelope.nonce,
                FullAad(key->id, aad)) ||
      EVP_DecryptUpdate(context.get(), MutableBytes(plaintext), &length,
                        Bytes(envelope.sealed),
                        static_cast<int>(ciphertext_size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                          MutableBytes(envelope.sealed) + ciphertext_size) !=
          1) {
    ClearSecret(&plaintext);
    return OpenSslError("decryption");
  }
  if (EVP_DecryptFinal_ex(context.get(), MutableBytes(plaintext) + length,
                          &final_length) != 1 ||
      static_cast<size_t>(length + final_length) != ciphertext_size) {
    // Unauthenticated output must not leave this function.
    ClearSecret(&plaintext);
    return absl::DataLossError(absl::StrCat(
        "sealed value does not authenticate with key '", key->id,
        "': another key under that id, other associated data (a value moved "
        "to another place), or an altered value"));
  }
  return plaintext;
}

absl::StatusOr<std::string> KeyRing::KeyIdOf(absl::string_view envelope) {
  TB_ASSIGN_OR_RETURN(Envelope parsed, ParseEnvelope(envelope));
  return std::string(parsed.key_id);
}

bool KeyRing::IsCurrent(absl::string_view envelope) const {
  absl::StatusOr<std::string> id = KeyIdOf(envelope);
  return id.ok() && *id == current_key_id();
}

}  // namespace tokenbroker
