#include "tests/testing/test_pki.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tokenbroker::testing {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat("test PKI: ", what, " failed"));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return std::string(data, size > 0 ? static_cast<size_t>(size) : 0);
}

absl::StatusOr<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError("PEM_write_bio_X509");
  }
  return BioText(bio.get());
}

absl::StatusOr<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    return OpenSslError("PEM_write_bio_PrivateKey");
  }
  return BioText(bio.get());
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid,
                          const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext =
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, const_cast<char*>(value.c_str()));
  if (ext == nullptr) return OpenSslError(absl::StrCat("extension ", value));
  int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (added != 1) return OpenSslError("X509_add_ext");
  return absl::OkStatus();
}

// Adds the subjectAltName extension(s) holding `names` (GEN_URI, GEN_DNS or
// GEN_IPADD, and the value), written byte for byte.
absl::Status AddSubjectAltNames(
    X509* cert, const std::vector<std::pair<int, std::string>>& names,
    bool one_extension_per_name) {
  struct NamesFree {
    void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  };
  std::unique_ptr<GENERAL_NAMES, NamesFree> group(sk_GENERAL_NAME_new_null());
  auto flush = [&]() -> absl::Status {
    if (sk_GENERAL_NAME_num(group.get()) == 0) return absl::OkStatus();
    // X509V3_ADD_APPEND adds another extension even if there is one.
    if (X509_add1_ext_i2d(cert, NID_subject_alt_name, group.get(), 0,
                          X509V3_ADD_APPEND) != 1) {
      return OpenSslError("X509_add1_ext_i2d(subjectAltName)");
    }
    group.reset(sk_GENERAL_NAME_new_null());
    return absl::OkStatus();
  };
  for (const auto& [type, value] : names) {
    GENERAL_NAME* name = GENERAL_NAME_new();
    if (name == nullptr) return OpenSslError("GENERAL_NAME_new");
    if (type == GEN_IPADD) {
      ASN1_OCTET_STRING* ip = a2i_IPADDRESS(value.c_str());
      if (ip == nullptr) {
        GENERAL_NAME_free(name);
        return OpenSslError("a2i_IPADDRESS");
      }
      GENERAL_NAME_set0_value(name, GEN_IPADD, ip);
    } else {
      ASN1_IA5STRING* text = ASN1_IA5STRING_new();
      if (text == nullptr ||
          ASN1_STRING_set(text, value.data(), static_cast<int>(value.size())) !=
              1) {
        ASN1_IA5STRING_free(text);
        GENERAL_NAME_free(name);
        return OpenSslError("ASN1_STRING_set");
      }
      GENERAL_NAME_set0_value(name, type, text);
    }
    sk_GENERAL_NAME_push(group.get(), name);
    if (one_extension_per_name) {
      if (absl::Status s = flush(); !s.ok()) return s;
    }
  }
  return flush();
}

struct CertRequest {
  std::string common_name;
  std::vector<std::string> more_common_names;
  // GEN_URI, GEN_DNS or GEN_IPADD, and the value.
  std::vector<std::pair<int, std::string>> san;
  bool one_extension_per_san = false;
  bool is_ca = false;
  bool server = false;
  long not_before_offset = -3600;       // Seconds from now.
  long not_after_offset = 24L * 3600L;  // Seconds from now.
};

// Builds a certificate for `key`, signed by `issuer_key` as `issuer`
// (nullptr: self-signed).
absl::StatusOr<X509Ptr> BuildCert(const CertRequest& request, long serial,
                                  EVP_PKEY* key, X509* issuer,
                                  EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (cert == nullptr) return OpenSslError("X509_new");
  X509_set_version(cert.get(), 2);  // v3
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), request.not_before_offset);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), request.not_after_offset);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(
      name, "O", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>("tokenbroker tests"), -1, -1, 0);
  std::vector<std::string> common_names = request.more_common_names;
  if (!request.common_name.empty()) {
    common_names.insert(common_names.begin(), request.common_name);
  }
  for (const std::string& common_name : common_names) {
    X509_NAME_add_entry_by_txt(
        name, "CN", MBSTRING_ASC,
        reinterpret_cast<const unsigned char*>(common_name.data()),
        static_cast<int>(common_name.size()), -1, 0);
  }
  X509* signer = issuer == nullptr ? cert.get() : issuer;
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));

  std::vector<std::pair<int, std::string>> extensions;
  if (request.is_ca) {
    extensions = {{NID_basic_constraints, "critical,CA:TRUE"},
                  {NID_key_usage, "critical,keyCertSign,cRLSign"}};
  } else {
    extensions = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
        {NID_ext_key_usage, request.server ? "serverAuth" : "clientAuth"}};
  }
  extensions.push_back({NID_subject_key_identifier, "hash"});
  if (issuer != nullptr) {
    extensions.push_back({NID_authority_key_identifier, "keyid:always"});
  }
  for (const auto& [nid, value] : extensions) {
    if (absl::Status s = AddExtension(cert.get(), signer, nid, value);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = AddSubjectAltNames(cert.get(), request.san,
                                          request.one_extension_per_san);
      !s.ok()) {
    return s;
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) {
    return OpenSslError("X509_sign");
  }
  return cert;
}

absl::Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Generates a key, builds the certificate and writes both as
// DIR/NAME.crt and DIR/NAME.key.
absl::StatusOr<PemPair> Issue(const std::string& dir, const std::string& name,
                              const CertRequest& request, long serial,
                              X509* issuer, EVP_PKEY* issuer_key,
                              PkeyPtr* key_out = nullptr,
                              X509Ptr* cert_out = nullptr) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError("EVP_EC_gen");
  absl::StatusOr<X509Ptr> cert =
      BuildCert(request, serial, key.get(), issuer,
                issuer_key == nullptr ? key.get() : issuer_key);
  if (!cert.ok()) return cert.status();
  PemPair pair;
  absl::StatusOr<std::string> cert_pem = CertPem(cert->get());
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = KeyPem(key.get());
  if (!key_pem.ok()) return key_pem.status();
  pair.cert_pem = *std::move(cert_pem);
  pair.key_pem = *std::move(key_pem);
  pair.cert_file = absl::StrCat(dir, "/", name, ".crt");
  pair.key_file = absl::StrCat(dir, "/", name, ".key");
  if (absl::Status s = WriteFile(pair.cert_file, pair.cert_pem); !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteFile(pair.key_file, pair.key_pem); !s.ok()) {
    return s;
  }
  if (key_out != nullptr) *key_out = std::move(key);
  if (cert_out != nullptr) *cert_out = *std::move(cert);
  return pair;
}

struct Authority {
  PkeyPtr key;
  X509Ptr cert;
};

}  // namespace

struct TestPki::Authorities {
  Authority main;
  Authority other;
  Authority& Get(bool other_ca) { return other_ca ? other : main; }
};

TestPki::TestPki() : authorities_(std::make_unique<Authorities>()) {}

absl::StatusOr<TestPki> TestPki::Create() {
  TestPki pki;
  std::string dir_template =
      (std::filesystem::temp_directory_path() / "tokenbroker-pki-XXXXXX")
          .string();
  if (mkdtemp(dir_template.data()) == nullptr) {
    return absl::InternalError("test PKI: cannot create a temporary directory");
  }
  pki.dir_ = dir_template;

  for (bool other : {false, true}) {
    CertRequest request;
    request.common_name = other ? "Other Test CA" : "Token Broker Test CA";
    request.is_ca = true;
    request.not_after_offset = 7L * 24 * 3600;
    Authority& authority = pki.authorities_->Get(other);
    absl::StatusOr<PemPair> ca =
        Issue(pki.dir_, other ? "other-ca" : "ca", request, pki.serial_++,
              nullptr, nullptr, &authority.key, &authority.cert);
    if (!ca.ok()) return ca.status();
    (other ? pki.other_ca_ : pki.ca_) = *std::move(ca);
  }

  CertRequest server;
  server.common_name = "localhost";
  server.server = true;
  server.san = {{GEN_IPADD, "127.0.0.1"}, {GEN_DNS, "localhost"}};
  Authority& ca = pki.authorities_->Get(false);
  absl::StatusOr<PemPair> server_pair = Issue(
      pki.dir_, "server", server, pki.serial_++, ca.cert.get(), ca.key.get());
  if (!server_pair.ok()) return server_pair.status();
  pki.server_ = *std::move(server_pair);
  return pki;
}

TestPki::TestPki(TestPki&& other) noexcept
    : authorities_(std::move(other.authorities_)),
      dir_(std::move(other.dir_)),
      ca_(std::move(other.ca_)),
      other_ca_(std::move(other.other_ca_)),
      server_(std::move(other.server_)),
      serial_(other.serial_) {
  other.dir_.clear();
}

TestPki::~TestPki() {
  if (dir_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::StatusOr<PemPair> TestPki::IssueClient(const std::string& name,
                                             const ClientCertSpec& spec,
                                             bool by_other_ca) {
  CertRequest request;
  request.common_name = spec.common_name;
  request.more_common_names = spec.more_common_names;
  if (!spec.spiffe_id.empty()) request.san = {{GEN_URI, spec.spiffe_id}};
  for (const std::string& uri : spec.uri_sans) {
    request.san.emplace_back(GEN_URI, uri);
  }
  for (const std::string& dns : spec.dns_sans) {
    request.san.emplace_back(GEN_DNS, dns);
  }
  request.one_extension_per_san = spec.one_extension_per_san;
  if (spec.expired) {
    request.not_before_offset = -2L * 24 * 3600;
    request.not_after_offset = -24L * 3600;
  }
  Authority& ca = authorities_->Get(by_other_ca);
  return Issue(dir_, name, request, serial_++, ca.cert.get(), ca.key.get());
}

}  // namespace tokenbroker::testing
