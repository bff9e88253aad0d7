#include "service/cache/token_request.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

Config TwoApps() {
  Config config;
  AppConfig wide;
  wide.name = "design-center";
  wide.scopes = {"read:exchange", "view:design_center", "view:environment"};
  AppConfig narrow;
  narrow.name = "exchange-reader";
  narrow.scopes = {"read:exchange"};
  AppConfig scoped;
  scoped.name = "generic";
  scoped.scopes = {"a", "b"};
  scoped.send_scope = true;
  config.apps = {wide, narrow, scoped};
  return config;
}

TEST(ResolveTokenRequestTest, NamedAppWithHeldScopes) {
  Config config = TwoApps();
  auto resolved =
      ResolveTokenRequest(config, "design-center", {"view:design_center"});
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->app->name, "design-center");
  EXPECT_EQ(resolved->upstream.app, "design-center");
  // Anypoint client-credentials apps take no scope parameter.
  EXPECT_THAT(resolved->upstream.scopes, IsEmpty());
}

TEST(ResolveTokenRequestTest, ProfileIsAlwaysHeld) {
  Config config = TwoApps();
  EXPECT_THAT(ResolveTokenRequest(config, "exchange-reader", {"profile"}),
              IsOk());
}

TEST(ResolveTokenRequestTest, MissingScopeIsPermissionDenied) {
  Config config = TwoApps();
  EXPECT_THAT(
      ResolveTokenRequest(config, "exchange-reader", {"view:design_center"}),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr("does not hold scope(s) [view:design_center]")));
}

TEST(ResolveTokenRequestTest, UnknownAppIsNotFound) {
  Config config = TwoApps();
  EXPECT_THAT(ResolveTokenRequest(config, "nope", {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
}

TEST(ResolveTokenRequestTest, EmptyAppPicksNarrowestCoveringApp) {
  Config config = TwoApps();
  auto resolved = ResolveTokenRequest(config, "", {"read:exchange"});
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->app->name, "exchange-reader");
  resolved = ResolveTokenRequest(config, "", {"view:environment"});
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->app->name, "design-center");
  EXPECT_THAT(ResolveTokenRequest(config, "", {"manage:apis"}),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(ResolveTokenRequestTest, SendScopeAppsKeySortedRequestedScopes) {
  Config config = TwoApps();
  auto resolved = ResolveTokenRequest(config, "generic", {"b", "a", "b"});
  ASSERT_THAT(resolved, IsOk());
  EXPECT_THAT(resolved->upstream.scopes, ElementsAre("a", "b"));
  resolved = ResolveTokenRequest(config, "generic", {});
  ASSERT_THAT(resolved, IsOk());
  EXPECT_THAT(resolved->upstream.scopes, ElementsAre("a", "b"));
}

TEST(ResolveTokenRequestTest, MalformedInputIsInvalidArgument) {
  Config config = TwoApps();
  for (const char* app : {"has space", "../etc", "a/b", "x\n"}) {
    EXPECT_THAT(ResolveTokenRequest(config, app, {}),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << app;
  }
  EXPECT_THAT(ResolveTokenRequest(config, std::string(65, 'a'), {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  for (const char* scope : {"", "two words", "quote\"", "tab\t"}) {
    EXPECT_THAT(ResolveTokenRequest(config, "design-center", {scope}),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << scope;
  }
  EXPECT_THAT(ResolveTokenRequest(config, "design-center",
                                  std::vector<std::string>(101, "x")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace tokenbroker
