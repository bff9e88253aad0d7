#include "service/auth/identity.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_pki.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::tokenbroker::testing::ClientCertSpec;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::PemPair;
using ::tokenbroker::testing::StatusIs;
using ::tokenbroker::testing::TestPki;

constexpr char kOrdersKey[] = "orders-bearer-key-0123456789abcdef";
constexpr char kBillingKey[] = "billing-bearer-key-fedcba9876543210";

Config MakeConfig(bool insecure_plaintext, bool with_anonymous) {
  std::string yaml = absl::StrCat(
      "development: {insecure_plaintext: ",
      insecure_plaintext ? "true" : "false",
      "}\n"
      "apps:\n"
      "  - {name: app, base_url: 'http://127.0.0.1:1', client_id: id,\n"
      "     client_secret: {file: /dev/null}, scopes: [a, b]}\n"
      "callers:\n"
      "  - name: orders\n"
      "    identities: ['spiffe://cluster.local/ns/shop/sa/orders']\n"
      "    bearer_key_sha256: [",
      Sha256Hex(kOrdersKey),
      "]\n"
      "  - name: billing\n"
      "    identities: [billing.internal]\n"
      "    bearer_key_sha256: [",
      Sha256Hex(kBillingKey),
      "]\n"
      "  - name: by-spiffe-and-cn\n"
      "    identities: ['spiffe://cluster.local/ns/shop/sa/both']\n",
      with_anonymous ? "  - name: anonymous\n" : "");
  absl::StatusOr<Config> config = ParseConfig(yaml, "identity.yaml");
  EXPECT_THAT(config, IsOk());
  return config.ok() ? *std::move(config) : Config();
}

constexpr char kOrdersId[] = "spiffe://cluster.local/ns/shop/sa/orders";

// A peer that presented a verified certificate with these names.
PeerCredentials CertPeer(std::vector<std::string> uri_sans,
                         std::vector<std::string> common_names) {
  PeerCredentials peer;
  peer.has_certificate = true;
  peer.uri_sans = std::move(uri_sans);
  peer.common_names = std::move(common_names);
  peer.peer = "ipv4:127.0.0.1:5555";
  return peer;
}

TEST(Sha256HexTest, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(IdentifyCallerTest, BearerKeyMatchesByItsSha256) {
  Config config = MakeConfig(false, false);
  PeerCredentials peer;
  peer.bearer_key = kBillingKey;
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
  ASSERT_THAT(identity, IsOk());
  EXPECT_EQ(identity->caller->name, "billing");
  EXPECT_EQ(identity->method, "bearer");
  // The principal names the key by a short fingerprint of its hash.
  EXPECT_EQ(identity->principal,
            absl::StrCat("key:", Sha256Hex(kBillingKey).substr(0, 12)));
  EXPECT_THAT(identity->principal, Not(HasSubstr(kBillingKey)));
}

TEST(IdentifyCallerTest, EveryKeyOfManyCallersFindsItsOwnCaller) {
  // Every configured hash is compared (no early exit); the match is the
  // caller that holds it, wherever it is in the list.
  Config config = MakeConfig(false, false);
  for (int i = 0; i < 20; ++i) {
    CallerConfig caller;
    caller.name = absl::StrCat("c", i);
    caller.bearer_key_sha256 = {Sha256Hex(absl::StrCat("key-", i)),
                                Sha256Hex(absl::StrCat("next-key-", i))};
    config.callers.push_back(caller);
  }
  for (int i = 0; i < 20; ++i) {
    for (const std::string& key :
         {absl::StrCat("key-", i), absl::StrCat("next-key-", i)}) {
      PeerCredentials peer;
      peer.bearer_key = key;
      absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
      ASSERT_THAT(identity, IsOk());
      EXPECT_EQ(identity->caller->name, absl::StrCat("c", i));
    }
  }
}

TEST(IdentifyCallerTest, HashInTheConfigIsNotAKey) {
  // Sending the configured hash itself must not authenticate.
  Config config = MakeConfig(false, false);
  PeerCredentials peer;
  peer.bearer_key = Sha256Hex(kOrdersKey);
  EXPECT_THAT(IdentifyCaller(config, peer),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(IdentifyCallerTest, KeysDifferingInOneCharacterAreRefused) {
  Config config = MakeConfig(false, false);
  std::string key = kOrdersKey;
  for (size_t i : {size_t{0}, key.size() / 2, key.size() - 1}) {
    std::string near = key;
    near[i] ^= 1;
    PeerCredentials peer;
    peer.bearer_key = near;
    EXPECT_THAT(IdentifyCaller(config, peer),
                StatusIs(absl::StatusCode::kUnauthenticated))
        << "position " << i;
  }
  PeerCredentials prefix;
  prefix.bearer_key = key.substr(0, key.size() - 1);
  EXPECT_THAT(IdentifyCaller(config, prefix),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(IdentifyCallerTest, UnknownKeyIsRefusedEvenWithAMatchingCertificate) {
  Config config = MakeConfig(false, false);
  PeerCredentials peer = CertPeer({kOrdersId}, {});
  peer.bearer_key = "a-key-nobody-was-given";
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
  EXPECT_THAT(identity, StatusIs(absl::StatusCode::kUnauthenticated,
                                 AllOf(HasSubstr("bearer key"),
                                       Not(HasSubstr("a-key-nobody")))));
}

TEST(IdentifyCallerTest, EmptyOrMalformedKeyIsRefused) {
  Config config = MakeConfig(true, true);
  PeerCredentials peer;
  peer.bearer_key = "";  // What a malformed authorization header becomes.
  EXPECT_THAT(IdentifyCaller(config, peer),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(IdentifyCallerTest, ValidKeyWinsOverTheCertificate) {
  // A caller may hold a certificate of one identity and the key of another;
  // the key, being explicit, decides.
  Config config = MakeConfig(false, false);
  PeerCredentials peer = CertPeer({kOrdersId}, {});
  peer.bearer_key = kBillingKey;
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
  ASSERT_THAT(identity, IsOk());
  EXPECT_EQ(identity->caller->name, "billing");
}

TEST(IdentifyCallerTest, SpiffeIdIdentifies) {
  Config config = MakeConfig(false, false);
  PeerCredentials peer = CertPeer({kOrdersId}, {"whatever"});
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
  ASSERT_THAT(identity, IsOk());
  EXPECT_EQ(identity->caller->name, "orders");
  EXPECT_EQ(identity->method, "mtls");
  EXPECT_EQ(identity->principal, "spiffe://cluster.local/ns/shop/sa/orders");
}

TEST(IdentifyCallerTest, SpiffeIdIsPreferredOverCn) {
  // The certificate's CN names another caller: the SPIFFE id decides.
  Config config = MakeConfig(false, false);
  PeerCredentials peer = CertPeer({"spiffe://cluster.local/ns/shop/sa/both"},
                                  {"billing.internal"});
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
  ASSERT_THAT(identity, IsOk());
  EXPECT_EQ(identity->caller->name, "by-spiffe-and-cn");
}

TEST(IdentifyCallerTest, UnknownSpiffeIdDoesNotFallBackToCn) {
  // A certificate with a SPIFFE id is that SPIFFE id; its CN (which the
  // issuer may derive from a request) must not open another caller's door.
  Config config = MakeConfig(false, false);
  PeerCredentials peer = CertPeer(
      {"spiffe://cluster.local/ns/other/sa/unknown"}, {"billing.internal"});
  EXPECT_THAT(
      IdentifyCaller(config, peer),
      StatusIs(absl::StatusCode::kUnauthenticated,
               HasSubstr("spiffe://cluster.local/ns/other/sa/unknown")));
}

TEST(IdentifyCallerTest, CnIsUsedWithoutSpiffeId) {
  Config config = MakeConfig(false, false);
  PeerCredentials peer = CertPeer({}, {"billing.internal"});
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
  ASSERT_THAT(identity, IsOk());
  EXPECT_EQ(identity->caller->name, "billing");
  EXPECT_EQ(identity->method, "mtls");
  EXPECT_EQ(identity->principal, "billing.internal");
}

TEST(IdentifyCallerTest, UnknownCertificateIsRefusedNamingIt) {
  Config config = MakeConfig(true, true);
  PeerCredentials peer = CertPeer({}, {"stranger"});
  // Even in plaintext development mode a presented but unknown certificate
  // is not silently turned into "anonymous".
  EXPECT_THAT(
      IdentifyCaller(config, peer),
      StatusIs(absl::StatusCode::kUnauthenticated,
               AllOf(HasSubstr("CN stranger"), HasSubstr("identities"))));
}

TEST(IdentifyCallerTest, AnonymousNeedsPlaintextFlagAndConfiguredCaller) {
  PeerCredentials nobody;
  nobody.peer = "ipv4:127.0.0.1:5555";
  {
    Config config = MakeConfig(true, true);
    absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, nobody);
    ASSERT_THAT(identity, IsOk());
    EXPECT_EQ(identity->caller->name, "anonymous");
    EXPECT_EQ(identity->method, "anonymous");
  }
  for (auto [plaintext, anonymous] :
       {std::pair{true, false}, std::pair{false, true},
        std::pair{false, false}}) {
    Config config = MakeConfig(plaintext, anonymous);
    EXPECT_THAT(IdentifyCaller(config, nobody),
                StatusIs(absl::StatusCode::kUnauthenticated,
                         HasSubstr("no caller identity")))
        << "insecure_plaintext=" << plaintext << " anonymous=" << anonymous;
  }
}

TEST(IdentifyCallerTest, NoCallersAtAllMeansNoIdentity) {
  Config config;
  PeerCredentials peer = CertPeer({}, {"someone"});
  EXPECT_THAT(IdentifyCaller(config, peer),
              StatusIs(absl::StatusCode::kUnauthenticated));
  peer = PeerCredentials();
  peer.bearer_key = "k";
  EXPECT_THAT(IdentifyCaller(config, peer),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(IdentifyCallerTest, MessagesNeverContainTheKey) {
  Config config = MakeConfig(true, true);
  for (const std::string& key :
       {std::string("totally-secret-key-material"),
        std::string(kOrdersKey) + "x", Sha256Hex(kOrdersKey)}) {
    PeerCredentials peer;
    peer.bearer_key = key;
    absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
    ASSERT_FALSE(identity.ok());
    EXPECT_THAT(std::string(identity.status().message()), Not(HasSubstr(key)));
    EXPECT_THAT(std::string(identity.status().message()),
                Not(HasSubstr(Sha256Hex(key))));
  }
}

// The cases of the review (issue 10, defect 4), each with the CN of a
// configured caller that the broker used to fall back to.

TEST(IdentifyCallerTest, TwoSpiffeUrisAreRefusedWhateverTheCn) {
  Config config = MakeConfig(false, false);
  for (const std::vector<std::string>& uris :
       {std::vector<std::string>{kOrdersId,
                                 "spiffe://cluster.local/ns/shop/sa/both"},
        std::vector<std::string>{kOrdersId, kOrdersId}}) {
    PeerCredentials peer = CertPeer(uris, {"billing.internal"});
    EXPECT_THAT(IdentifyCaller(config, peer),
                StatusIs(absl::StatusCode::kUnauthenticated,
                         HasSubstr("carries 2 URI SANs")));
  }
}

TEST(IdentifyCallerTest, SpiffeUriWithAnotherUriIsRefusedWhateverTheCn) {
  Config config = MakeConfig(false, false);
  for (const std::vector<std::string>& uris :
       {std::vector<std::string>{kOrdersId, "https://orders.shop.example"},
        std::vector<std::string>{"https://orders.shop.example", kOrdersId}}) {
    PeerCredentials peer = CertPeer(uris, {"billing.internal"});
    EXPECT_THAT(
        IdentifyCaller(config, peer),
        StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("exactly one")));
  }
}

TEST(IdentifyCallerTest, MalformedSpiffeIdIsRefusedWhateverTheCn) {
  Config config = MakeConfig(false, false);
  for (const std::string& uri : {
           std::string("spiffe://cluster.local"),  // No path.
           std::string("spiffe://cluster.local/"),
           std::string("spiffe://Cluster.local/ns/shop/sa/orders"),
           std::string("SPIFFE://cluster.local/ns/shop/sa/orders"),
           std::string("spiffe://cluster.local:443/ns/shop/sa/orders"),
           std::string("spiffe://u@cluster.local/ns/shop/sa/orders"),
           std::string("spiffe://cluster.local/ns/shop/sa/orders/"),
           std::string("spiffe://cluster.local/ns/shop/sa/orders?x"),
           std::string("spiffe://cluster.local/ns/shop/sa/orders#x"),
           std::string("spiffe://cluster.local/ns//shop/sa/orders"),
           std::string("spiffe://cluster.local/ns/./shop/sa/orders"),
           std::string("spiffe://cluster.local/ns/shop/sa/%6Frders"),
           std::string("https://cluster.local/ns/shop/sa/orders"),
           std::string("billing.internal"),
       }) {
    PeerCredentials peer = CertPeer({uri}, {"billing.internal"});
    EXPECT_THAT(IdentifyCaller(config, peer),
                StatusIs(absl::StatusCode::kUnauthenticated,
                         HasSubstr("is not a valid SPIFFE id")))
        << uri;
  }
}

TEST(IdentifyCallerTest, CnThatIsAConfiguredSpiffeIdIsRefused) {
  // No SAN, and a CN naming orders' SPIFFE id: a CN is never a SPIFFE id.
  Config config = MakeConfig(false, false);
  for (const std::string& cn :
       {std::string(kOrdersId), std::string("SPIFFE://cluster.local/x/y"),
        std::string("spiffe:whatever")}) {
    PeerCredentials peer = CertPeer({}, {cn});
    EXPECT_THAT(IdentifyCaller(config, peer),
                StatusIs(absl::StatusCode::kUnauthenticated,
                         HasSubstr("reads as a SPIFFE id")))
        << cn;
  }
}

TEST(IdentifyCallerTest, CnLookingLikeASpiffeIdNeverMatchesEvenIfConfigured) {
  // ParseConfig never puts such an entry among common_names; a Config built
  // another way does not open that door either.
  Config config;
  CallerConfig caller;
  caller.name = "odd";
  caller.common_names = {kOrdersId};
  config.callers.push_back(caller);
  EXPECT_THAT(IdentifyCaller(config, CertPeer({}, {kOrdersId})),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(IdentifyCallerTest, SpiffeIdMatchesOnlySpiffeIdsAndCnOnlyCns) {
  // A caller's CN entry is not a SPIFFE id and the other way round.
  Config config;
  CallerConfig by_cn;
  by_cn.name = "by-cn";
  by_cn.common_names = {"spiffe-ish.internal"};
  CallerConfig by_id;
  by_id.name = "by-id";
  by_id.spiffe_ids = {"spiffe://td/ns/a"};
  config.callers = {by_cn, by_id};
  EXPECT_THAT(IdentifyCaller(config, CertPeer({"spiffe://td/ns/a"}, {})),
              IsOk());
  EXPECT_THAT(IdentifyCaller(config, CertPeer({}, {"spiffe-ish.internal"})),
              IsOk());
  EXPECT_THAT(IdentifyCaller(config, CertPeer({}, {"td/ns/a"})),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(IdentifyCallerTest, SeveralCnsWithoutSanAreRefused) {
  Config config = MakeConfig(false, false);
  PeerCredentials peer = CertPeer({}, {"billing.internal", "other"});
  EXPECT_THAT(
      IdentifyCaller(config, peer),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("2 subject CNs")));
  peer = CertPeer({}, {"billing.internal", "billing.internal"});
  EXPECT_THAT(IdentifyCaller(config, peer),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(IdentifyCallerTest, UnreadableCertificateIsRefusedNotAnonymous) {
  Config config = MakeConfig(true, true);
  PeerCredentials peer = CertPeer({}, {"billing.internal"});
  peer.certificate_error = "no PEM certificate could be parsed";
  EXPECT_THAT(IdentifyCaller(config, peer),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("cannot be read")));
}

TEST(IdentifyCallerTest, CertificateWithoutNamesIsRefusedNotAnonymous) {
  Config config = MakeConfig(true, true);
  EXPECT_THAT(IdentifyCaller(config, CertPeer({}, {})),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("neither a SPIFFE id")));
}

TEST(IdentifyCallerTest, NamesFromTheCertificateAreSanitizedInMessages) {
  Config config = MakeConfig(false, false);
  std::string uri = "spiffe://cluster.local/ns/\n\x01" + std::string(500, 'a');
  absl::StatusOr<CallerIdentity> identity =
      IdentifyCaller(config, CertPeer({uri}, {}));
  ASSERT_FALSE(identity.ok());
  std::string message(identity.status().message());
  EXPECT_THAT(message, Not(HasSubstr("\n")));
  EXPECT_THAT(message, Not(HasSubstr(std::string(200, 'a'))));
  identity = IdentifyCaller(config, CertPeer({}, {"cn\r\nforged: yes"}));
  ASSERT_FALSE(identity.ok());
  EXPECT_THAT(std::string(identity.status().message()),
              AllOf(HasSubstr("cn??forged: yes"), Not(HasSubstr("\r"))));
}

// ReadCertificateNames() on certificates made by the test PKI.
class CertificateNamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TestPki> pki = TestPki::Create();
    ASSERT_THAT(pki, IsOk());
    pki_ = std::make_unique<TestPki>(*std::move(pki));
  }

  std::string Pem(const ClientCertSpec& spec) {
    absl::StatusOr<PemPair> cert =
        pki_->IssueClient(absl::StrCat("c", ++count_), spec);
    EXPECT_THAT(cert, IsOk());
    return cert.ok() ? cert->cert_pem : "";
  }

  // What IdentifyCaller() answers for a peer with the certificate `spec`,
  // read as PeerFromContext() reads it.
  absl::StatusOr<CallerIdentity> Identify(const ClientCertSpec& spec) {
    absl::StatusOr<CertificateNames> names = ReadCertificateNames(Pem(spec));
    EXPECT_THAT(names, IsOk());
    if (!names.ok()) return names.status();
    return IdentifyCaller(config_,
                          CertPeer(names->uri_sans, names->common_names));
  }

  std::unique_ptr<TestPki> pki_;
  int count_ = 0;
  Config config_ = MakeConfig(false, false);
};

TEST_F(CertificateNamesTest, ReadsEveryUriSanAndCnInOrder) {
  ClientCertSpec spec;
  spec.common_name = "first.internal";
  spec.more_common_names = {"second.internal"};
  spec.spiffe_id = kOrdersId;
  spec.uri_sans = {"https://x.example/a", "spiffe://cluster.local"};
  spec.dns_sans = {"orders.shop.svc"};
  absl::StatusOr<CertificateNames> names = ReadCertificateNames(Pem(spec));
  ASSERT_THAT(names, IsOk());
  EXPECT_THAT(names->uri_sans, ElementsAre(kOrdersId, "https://x.example/a",
                                           "spiffe://cluster.local"));
  EXPECT_THAT(names->common_names,
              ElementsAre("first.internal", "second.internal"));
}

TEST_F(CertificateNamesTest, CertificateWithoutSan) {
  absl::StatusOr<CertificateNames> names =
      ReadCertificateNames(Pem({"billing.internal", ""}));
  ASSERT_THAT(names, IsOk());
  EXPECT_THAT(names->uri_sans, IsEmpty());
  EXPECT_THAT(names->common_names, ElementsAre("billing.internal"));
}

TEST_F(CertificateNamesTest, UriBytesAreKeptVerbatim) {
  ClientCertSpec spec;
  spec.uri_sans = {std::string("spiffe://cluster.local/ns/a\0b", 29)};
  absl::StatusOr<CertificateNames> names = ReadCertificateNames(Pem(spec));
  ASSERT_THAT(names, IsOk());
  EXPECT_THAT(names->uri_sans, ElementsAre(spec.uri_sans[0]));
}

TEST_F(CertificateNamesTest, TwoSubjectAltNameExtensionsAreRefused) {
  // Readers differ on which extension counts; refuse rather than guess.
  ClientCertSpec spec;
  spec.spiffe_id = kOrdersId;
  spec.uri_sans = {"spiffe://cluster.local/ns/shop/sa/both"};
  spec.one_extension_per_san = true;
  EXPECT_THAT(ReadCertificateNames(Pem(spec)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("more than one subjectAltName")));
}

TEST_F(CertificateNamesTest, NotACertificateIsRefused) {
  for (const std::string& pem :
       {std::string(""), std::string("hello"),
        std::string("-----BEGIN CERTIFICATE-----\nAAAA\n"
                    "-----END CERTIFICATE-----\n"),
        pki_->ca().key_pem}) {
    EXPECT_THAT(ReadCertificateNames(pem),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST_F(CertificateNamesTest, ConfirmedCasesOfTheReviewAreRefused) {
  // Two SPIFFE URIs + CN of a configured caller.
  ClientCertSpec two_ids{"billing.internal", kOrdersId};
  two_ids.uri_sans = {"spiffe://cluster.local/ns/shop/sa/both"};
  EXPECT_THAT(Identify(two_ids), StatusIs(absl::StatusCode::kUnauthenticated));
  // One SPIFFE URI + an https:// URI.
  ClientCertSpec with_https{"billing.internal", kOrdersId};
  with_https.uri_sans = {"https://orders.shop.example/"};
  EXPECT_THAT(Identify(with_https),
              StatusIs(absl::StatusCode::kUnauthenticated));
  // spiffe://cluster.local (no path).
  EXPECT_THAT(Identify({"billing.internal", "spiffe://cluster.local"}),
              StatusIs(absl::StatusCode::kUnauthenticated));
  // No SAN and CN = a configured SPIFFE id.
  EXPECT_THAT(Identify({kOrdersId, ""}),
              StatusIs(absl::StatusCode::kUnauthenticated));

  // What still works: one valid SPIFFE id, or a CN without URI SANs (DNS
  // SANs do not matter).
  absl::StatusOr<CallerIdentity> orders =
      Identify({"billing.internal", kOrdersId});
  ASSERT_THAT(orders, IsOk());
  EXPECT_EQ(orders->caller->name, "orders");
  ClientCertSpec billing_spec{"billing.internal", ""};
  billing_spec.dns_sans = {"billing.shop.svc"};
  absl::StatusOr<CallerIdentity> billing = Identify(billing_spec);
  ASSERT_THAT(billing, IsOk());
  EXPECT_EQ(billing->caller->name, "billing");
}

TEST_F(CertificateNamesTest, CacheAnswersAsTheParserDoes) {
  CertificateNamesCache cache(/*capacity=*/2);
  ClientCertSpec spec{"billing.internal", kOrdersId};
  spec.uri_sans = {"https://x.example/"};
  const std::string pems[] = {Pem(spec), Pem({"other.internal", ""}),
                              Pem({"", kOrdersId}), "not a certificate"};
  // Twice round, through a cache smaller than the set: hits and misses.
  for (int round = 0; round < 2; ++round) {
    for (const std::string& pem : pems) {
      absl::StatusOr<CertificateNames> want = ReadCertificateNames(pem);
      for (int again = 0; again < 2; ++again) {
        absl::StatusOr<CertificateNames> got = cache.Get(pem);
        ASSERT_EQ(got.status(), want.status());
        if (!want.ok()) continue;
        EXPECT_EQ(got->uri_sans, want->uri_sans);
        EXPECT_EQ(got->common_names, want->common_names);
      }
    }
  }
}

}  // namespace
}  // namespace tokenbroker
