#include "service/auth/identity.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tokenbroker {
namespace {

struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};

// A name from a certificate made safe for a message and an audit record:
// printable ASCII only (others become '?'), at most 128 characters. The
// certificate is the peer's to write.
std::string ForMessage(absl::string_view name) {
  constexpr size_t kMax = 128;
  std::string out;
  for (char c : name.substr(0, kMax)) {
    out += absl::ascii_isprint(static_cast<unsigned char>(c)) ? c : '?';
  }
  if (name.size() > kMax) out += "...";
  return out;
}

absl::StatusOr<CallerIdentity> IdentifyBySpiffeId(const Config& config,
                                                  const PeerCredentials& peer) {
  // An X.509-SVID carries exactly one URI SAN. With more, which one names
  // the workload is the reader's guess (gRPC then sets no SPIFFE id at all),
  // so the certificate names nobody, whatever its CN says.
  if (peer.uri_sans.size() != 1) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the client certificate carries ", peer.uri_sans.size(),
        " URI SANs; a certificate with URI SANs is identified by exactly one, "
        "a SPIFFE id: issue it with a single spiffe:// URI SAN"));
  }
  const std::string& id = peer.uri_sans.front();
  if (std::string problem = CheckSpiffeId(id); !problem.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the client certificate's URI SAN (", ForMessage(id),
                     ") is not a valid SPIFFE id: ", problem,
                     "; issue it with spiffe://TRUST-DOMAIN/PATH"));
  }
  for (const CallerConfig& caller : config.callers) {
    for (const std::string& known : caller.spiffe_ids) {
      if (known == id) return CallerIdentity{&caller, "mtls", id};
    }
  }
  return absl::UnauthenticatedError(
      absl::StrCat("the client certificate (", id,
                   ") is not a configured caller: add it to a caller's "
                   "identities"));
}

absl::StatusOr<CallerIdentity> IdentifyByCommonName(
    const Config& config, const PeerCredentials& peer) {
  if (peer.common_names.size() != 1) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the client certificate has ", peer.common_names.size(),
        " subject CNs and no URI SAN: issue it with one SPIFFE id (URI SAN) "
        "or exactly one CN"));
  }
  const std::string& cn = peer.common_names.front();
  // The namespaces stay apart: a CN is never taken for a SPIFFE id, however
  // it reads (config.cc keeps such entries out of common_names too).
  if (absl::StartsWithIgnoreCase(cn, "spiffe:")) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the client certificate's CN (", ForMessage(cn),
        ") reads as a SPIFFE id, which is accepted only as the certificate's "
        "URI SAN: issue it with that URI SAN"));
  }
  for (const CallerConfig& caller : config.callers) {
    for (const std::string& known : caller.common_names) {
      if (known == cn) return CallerIdentity{&caller, "mtls", cn};
    }
  }
  return absl::UnauthenticatedError(
      absl::StrCat("the client certificate (CN ", ForMessage(cn),
                   ") is not a configured caller: add it to a caller's "
                   "identities"));
}

}  // namespace

absl::StatusOr<CertificateNames> ReadCertificateNames(absl::string_view pem) {
  if (pem.size() > (1u << 20)) {
    return absl::InvalidArgumentError("the certificate is larger than 1 MiB");
  }
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) {
    return absl::InvalidArgumentError("the certificate cannot be read");
  }
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();  // Failures are reported here, not left on the queue.
  if (cert == nullptr) {
    return absl::InvalidArgumentError("no PEM certificate could be parsed");
  }
  CertificateNames names;
  int critical = 0;
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> sans(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(
          cert.get(), NID_subject_alt_name, &critical, nullptr)));
  ERR_clear_error();
  if (sans == nullptr && critical == -2) {
    return absl::InvalidArgumentError(
        "the certificate has more than one subjectAltName extension");
  }
  if (sans == nullptr && critical != -1) {
    return absl::InvalidArgumentError(
        "the certificate's subjectAltName extension is malformed");
  }
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    names.uri_sans.emplace_back(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
        static_cast<size_t>(ASN1_STRING_length(uri)));
  }
  const X509_NAME* subject = X509_get_subject_name(cert.get());
  for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
    const ASN1_STRING* value =
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
    unsigned char* utf8 = nullptr;
    int length = ASN1_STRING_to_UTF8(&utf8, value);
    if (length < 0) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          "the certificate's subject CN is not a valid string");
    }
    names.common_names.emplace_back(reinterpret_cast<const char*>(utf8),
                                    static_cast<size_t>(length));
    OPENSSL_free(utf8);
  }
  return names;
}

absl::StatusOr<CertificateNames> CertificateNamesCache::Get(
    absl::string_view pem) {
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(std::string(pem));
    if (it != entries_.end()) return it->second;
  }
  // Parsed without the lock: another thread may parse the same text at the
  // same time, and both store the same answer.
  absl::StatusOr<CertificateNames> names = ReadCertificateNames(pem);
  absl::MutexLock lock(&mu_);
  if (entries_.size() >= capacity_) entries_.clear();
  entries_.emplace(std::string(pem), names);
  return names;
}

absl::StatusOr<CallerIdentity> IdentifyCaller(const Config& config,
                                              const PeerCredentials& peer) {
  if (peer.bearer_key.has_value()) {
    std::string hash = Sha256Hex(*peer.bearer_key);
    const CallerConfig* match = nullptr;
    // Compare against every configured hash, in constant time each, and do
    // not stop early: timing says nothing about which hash was close.
    for (const CallerConfig& caller : config.callers) {
      for (const std::string& expected : caller.bearer_key_sha256) {
        if (expected.size() == hash.size() &&
            CRYPTO_memcmp(expected.data(), hash.data(), hash.size()) == 0) {
          match = &caller;
        }
      }
    }
    if (match == nullptr) {
      return absl::UnauthenticatedError(
          "the bearer key is not recognized: check the key file the caller "
          "sends, and that its SHA-256 is listed under the caller's "
          "bearer_key_sha256");
    }
    // The key's TokenFingerprint(), from the hash already computed.
    return CallerIdentity{
        match, "bearer",
        absl::StrCat("key:", hash.substr(0, kTokenFingerprintLength))};
  }

  if (!peer.certificate_error.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the client certificate cannot be read (",
                     peer.certificate_error, "): issue a well-formed one"));
  }
  // A certificate with any URI SAN is known only by it; its CN is looked at
  // only when it has none. Otherwise a certificate whose SPIFFE id is
  // unknown or malformed, and whose CN names a caller, would be taken for
  // that caller.
  if (!peer.uri_sans.empty()) return IdentifyBySpiffeId(config, peer);
  if (!peer.common_names.empty()) return IdentifyByCommonName(config, peer);
  if (peer.has_certificate) {
    return absl::UnauthenticatedError(
        "the client certificate has neither a SPIFFE id (URI SAN) nor a "
        "subject CN: issue it with one of them");
  }

  if (config.development.insecure_plaintext) {
    for (const CallerConfig& caller : config.callers) {
      if (caller.name == kAnonymousCaller) {
        return CallerIdentity{&caller, "anonymous", "-"};
      }
    }
  }
  return absl::UnauthenticatedError(
      "no caller identity: present a client certificate (mTLS) or send "
      "'authorization: Bearer KEY' metadata");
}

}  // namespace tokenbroker
