// Caller identity from client certificates over real mTLS (issue 10, defect
// 4): a certificate with any URI SAN is known only by a single valid SPIFFE
// id, never by its CN; a CN is matched only against CN identities. The
// emulator and the broker run in-process; certificates are generated at
// test time, including ones gRPC sets no SPIFFE id for.

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/test_pki.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;
using ::testing::HasSubstr;
using ::tokenbroker::testing::BrokerFixture;
using ::tokenbroker::testing::ClientCertSpec;
using ::tokenbroker::testing::PemPair;
using ::tokenbroker::testing::TestPki;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

class MtlsIdentityTest : public BrokerFixture {
 protected:
  static std::string OrdersId() { return TestPki::SpiffeId("shop", "orders"); }

  void SetUp() override {
    absl::StatusOr<TestPki> pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::make_unique<TestPki>(*std::move(pki));
    absl::StatusOr<PemPair> orders =
        pki_->IssueClient("orders", {"", OrdersId()});
    ASSERT_TRUE(orders.ok()) << orders.status();
    orders_cert_ = *std::move(orders);
    BrokerFixture::SetUp();
  }

  std::string ListenYaml() const override {
    return absl::StrCat("listen:\n  grpc: 127.0.0.1:0\n  tls:\n    cert_file: ",
                        pki_->server().cert_file,
                        "\n    key_file: ", pki_->server().key_file,
                        "\n    client_ca_file: ", pki_->ca().cert_file, "\n");
  }
  // orders is known by its SPIFFE id, billing by its CN; both may get
  // exchange-reader tokens.
  std::string CallersYaml() const override {
    return absl::StrCat(
        "callers:\n"
        "  - name: orders\n"
        "    identities: ['",
        OrdersId(),
        "']\n"
        "    grants: [{app: exchange-reader, scopes: ['*']}]\n"
        "  - name: billing\n"
        "    identities: [billing.internal]\n"
        "    grants: [{app: exchange-reader, scopes: ['*']}]\n");
  }
  std::string ExtraYaml() const override {
    return absl::StrCat("audit:\n  path: ", AuditPath(), "\n");
  }
  std::string AuditPath() const { return secrets_dir_ + "/audit.jsonl"; }

  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials()
      const override {
    return Credentials(orders_cert_);
  }
  std::shared_ptr<grpc::ChannelCredentials> Credentials(
      const PemPair& cert) const {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pki_->ca().cert_pem;
    options.pem_private_key = cert.key_pem;
    options.pem_cert_chain = cert.cert_pem;
    return grpc::SslCredentials(options);
  }

  // GetToken(exchange-reader) over a fresh connection with a certificate
  // made from `spec`.
  grpc::Status GetTokenWith(const ClientCertSpec& spec) {
    absl::StatusOr<PemPair> cert =
        pki_->IssueClient(absl::StrCat("client-", ++certs_), spec);
    EXPECT_TRUE(cert.ok()) << cert.status();
    if (!cert.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "no cert");
    // No connection or TLS session is shared between certificates.
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", broker_->port()), Credentials(*cert), args);
    std::unique_ptr<pb::TokenBroker::Stub> stub =
        pb::TokenBroker::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
    pb::GetTokenRequest request;
    request.set_app("exchange-reader");
    pb::GetTokenResponse response;
    grpc::Status status = stub->GetToken(&context, request, &response);
    if (status.ok()) tokens_seen_.push_back(response.access_token());
    return status;
  }

  std::vector<nlohmann::json> AuditRecords() const {
    broker_->FlushAudit();
    std::vector<nlohmann::json> records;
    for (absl::string_view line :
         absl::StrSplit(ReadFile(AuditPath()), '\n', absl::SkipEmpty())) {
      records.push_back(nlohmann::json::parse(line));
    }
    return records;
  }

  std::unique_ptr<TestPki> pki_;
  PemPair orders_cert_;
  int certs_ = 0;
};

TEST_F(MtlsIdentityTest, SingleSpiffeIdOrCnWithoutUriSansIdentify) {
  ClientCertSpec orders{"billing.internal", OrdersId()};
  grpc::Status status = GetTokenWith(orders);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ClientCertSpec billing{"billing.internal", ""};
  billing.dns_sans = {"billing.shop.svc"};  // Other SAN types do not count.
  status = GetTokenWith(billing);
  ASSERT_TRUE(status.ok()) << status.error_message();

  std::vector<std::string> principals;
  for (const nlohmann::json& record : AuditRecords()) {
    if (record["event"] != "use") continue;
    principals.push_back(absl::StrCat(record["caller"].get<std::string>(), " ",
                                      record["principal"].get<std::string>()));
  }
  EXPECT_THAT(principals, ::testing::ElementsAre("orders " + OrdersId(),
                                                 "billing billing.internal"));
}

struct RefusedCase {
  std::string name;
  ClientCertSpec spec;
  std::string message;
};

TEST_F(MtlsIdentityTest, CertificatesGrpcSetsNoSpiffeIdForNameNobody) {
  std::vector<RefusedCase> cases;
  // The confirmed cases: each carries the CN of a configured caller.
  {
    ClientCertSpec spec{"billing.internal", OrdersId()};
    spec.uri_sans = {TestPki::SpiffeId("shop", "other")};
    cases.push_back({"two SPIFFE ids", spec, "carries 2 URI SANs"});
  }
  {
    ClientCertSpec spec{"billing.internal", OrdersId()};
    spec.uri_sans = {"https://orders.shop.example/"};
    cases.push_back({"SPIFFE id and https URI", spec, "carries 2 URI SANs"});
  }
  cases.push_back({"SPIFFE id without path",
                   {"billing.internal", "spiffe://cluster.local"},
                   "not a valid SPIFFE id"});
  cases.push_back({"no SAN, CN is a configured SPIFFE id",
                   {OrdersId(), ""},
                   "reads as a SPIFFE id"});
  // More of the same kind.
  cases.push_back(
      {"upper-case trust domain",
       {"billing.internal", "spiffe://Cluster.local/ns/shop/sa/orders"},
       "not a valid SPIFFE id"});
  cases.push_back({"query",
                   {"billing.internal", OrdersId() + "?x=1"},
                   "not a valid SPIFFE id"});
  cases.push_back({"https URI only",
                   {"billing.internal", "https://billing.internal/"},
                   "not a valid SPIFFE id"});
  {
    ClientCertSpec spec{"billing.internal", ""};
    spec.more_common_names = {"other.internal"};
    cases.push_back({"two CNs", spec, "2 subject CNs"});
  }

  for (const RefusedCase& c : cases) {
    grpc::Status status = GetTokenWith(c.spec);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << c.name << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.name;
  }
  EXPECT_EQ(TokenRequests("exchange-reader"), 0);

  // Audited as refusals of an unknown caller, never as a login.
  int refused = 0;
  for (const nlohmann::json& record : AuditRecords()) {
    EXPECT_EQ(record["caller"], "-") << record.dump();
    EXPECT_EQ(record["grpc_status"], "UNAUTHENTICATED") << record.dump();
    ++refused;
  }
  EXPECT_EQ(refused, static_cast<int>(cases.size()));
}

TEST_F(MtlsIdentityTest, TwoSubjectAltNameExtensionsNameNobody) {
  // The handshake may refuse such a certificate already; either way it
  // gets no token.
  ClientCertSpec spec{"billing.internal", OrdersId()};
  spec.uri_sans = {OrdersId()};
  spec.one_extension_per_san = true;
  grpc::Status status = GetTokenWith(spec);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(TokenRequests("exchange-reader"), 0);
}

}  // namespace
}  // namespace tokenbroker
