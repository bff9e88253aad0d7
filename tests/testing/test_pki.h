#ifndef TOKENBROKER_TESTS_TESTING_TEST_PKI_H_
#define TOKENBROKER_TESTS_TESTING_TEST_PKI_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tokenbroker::testing {

// A certificate and its private key, as PEM text and as files.
struct PemPair {
  std::string cert_pem;
  std::string key_pem;
  std::string cert_file;
  std::string key_file;
};

// Subject and SANs of a client certificate. Empty fields are left out.
struct ClientCertSpec {
  std::string common_name;  // Subject CN.
  std::string spiffe_id;    // A URI SAN, e.g. spiffe://cluster.local/ns/N/sa/A.
  bool expired = false;     // notAfter in the past (and notBefore before it).
  // More URI SANs after spiffe_id, written byte for byte (need not be valid
  // URIs, nor SPIFFE ids).
  std::vector<std::string> uri_sans = {};
  std::vector<std::string> dns_sans = {};  // DNS-name SANs, after the URIs.
  // More subject CNs after common_name.
  std::vector<std::string> more_common_names = {};
  // Each SAN in a subjectAltName extension of its own (RFC 5280 allows one
  // per certificate: a malformed certificate, for parsers' tests).
  bool one_extension_per_san = false;
};

// A throwaway PKI generated at test time with OpenSSL (EC P-256 keys,
// SHA-256 signatures), written as PEM files into a temporary directory that
// the destructor removes:
//   ca()           a self-signed CA (the one the broker trusts);
//   other_ca()     a second, unrelated CA;
//   server()       the broker's certificate, signed by ca(), for the IP SAN
//                  127.0.0.1 and the DNS SAN "localhost";
//   IssueClient()  client certificates signed by ca() or other_ca().
// Not thread-safe.
class TestPki {
 public:
  // Errors: INTERNAL if OpenSSL or the file system fails.
  static absl::StatusOr<TestPki> Create();

  TestPki(TestPki&& other) noexcept;
  TestPki& operator=(TestPki&& other) = delete;
  TestPki(const TestPki&) = delete;
  ~TestPki();

  const PemPair& ca() const { return ca_; }
  const PemPair& other_ca() const { return other_ca_; }
  const PemPair& server() const { return server_; }
  const std::string& dir() const { return dir_; }

  // A client certificate (for TLS client authentication) signed by ca(), or
  // by other_ca() with `by_other_ca`. `name` names its files.
  absl::StatusOr<PemPair> IssueClient(const std::string& name,
                                      const ClientCertSpec& spec,
                                      bool by_other_ca = false);

  // The SPIFFE id of a Kubernetes service account in the test trust domain.
  static std::string SpiffeId(const std::string& ns,
                              const std::string& account) {
    return "spiffe://cluster.local/ns/" + ns + "/sa/" + account;
  }

 private:
  struct Authorities;  // The CAs' keys, to sign client certificates.

  TestPki();

  std::unique_ptr<Authorities> authorities_;
  std::string dir_;
  PemPair ca_;
  PemPair other_ca_;
  PemPair server_;
  long serial_ = 1;
};

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_TESTING_TEST_PKI_H_
