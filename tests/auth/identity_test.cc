#include "service/auth/identity.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

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
  PeerCredentials peer;
  peer.spiffe_id = "spiffe://cluster.local/ns/shop/sa/orders";
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
  PeerCredentials peer;
  peer.spiffe_id = "spiffe://cluster.local/ns/shop/sa/orders";
  peer.bearer_key = kBillingKey;
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
  ASSERT_THAT(identity, IsOk());
  EXPECT_EQ(identity->caller->name, "billing");
}

TEST(IdentifyCallerTest, SpiffeIdIdentifies) {
  Config config = MakeConfig(false, false);
  PeerCredentials peer;
  peer.spiffe_id = "spiffe://cluster.local/ns/shop/sa/orders";
  peer.common_name = "whatever";
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
  ASSERT_THAT(identity, IsOk());
  EXPECT_EQ(identity->caller->name, "orders");
  EXPECT_EQ(identity->method, "mtls");
  EXPECT_EQ(identity->principal, "spiffe://cluster.local/ns/shop/sa/orders");
}

TEST(IdentifyCallerTest, SpiffeIdIsPreferredOverCn) {
  // The certificate's CN names another caller: the SPIFFE id decides.
  Config config = MakeConfig(false, false);
  PeerCredentials peer;
  peer.spiffe_id = "spiffe://cluster.local/ns/shop/sa/both";
  peer.common_name = "billing.internal";
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
  ASSERT_THAT(identity, IsOk());
  EXPECT_EQ(identity->caller->name, "by-spiffe-and-cn");
}

TEST(IdentifyCallerTest, UnknownSpiffeIdDoesNotFallBackToCn) {
  // A certificate with a SPIFFE id is that SPIFFE id; its CN (which the
  // issuer may derive from a request) must not open another caller's door.
  Config config = MakeConfig(false, false);
  PeerCredentials peer;
  peer.spiffe_id = "spiffe://cluster.local/ns/other/sa/unknown";
  peer.common_name = "billing.internal";
  EXPECT_THAT(
      IdentifyCaller(config, peer),
      StatusIs(absl::StatusCode::kUnauthenticated,
               HasSubstr("spiffe://cluster.local/ns/other/sa/unknown")));
}

TEST(IdentifyCallerTest, CnIsUsedWithoutSpiffeId) {
  Config config = MakeConfig(false, false);
  PeerCredentials peer;
  peer.common_name = "billing.internal";
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(config, peer);
  ASSERT_THAT(identity, IsOk());
  EXPECT_EQ(identity->caller->name, "billing");
  EXPECT_EQ(identity->method, "mtls");
  EXPECT_EQ(identity->principal, "billing.internal");
}

TEST(IdentifyCallerTest, UnknownCertificateIsRefusedNamingIt) {
  Config config = MakeConfig(true, true);
  PeerCredentials peer;
  peer.common_name = "stranger";
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
  PeerCredentials peer;
  peer.common_name = "someone";
  EXPECT_THAT(IdentifyCaller(config, peer),
              StatusIs(absl::StatusCode::kUnauthenticated));
  peer.common_name.clear();
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

}  // namespace
}  // namespace tokenbroker
