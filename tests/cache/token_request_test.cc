#include "service/cache/token_request.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
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

// Issue 10, defect 7: with `usable` (a caller's view), whether an app the
// caller may not use covers the scopes is not revealed.
TEST(ResolveTokenRequestTest, WithUsableNoCoveringAppLooksTheSameEitherWay) {
  Config config = TwoApps();
  auto none = [](const AppConfig&) { return false; };
  absl::Status covered_elsewhere =
      ResolveTokenRequest(config, "", {"view:design_center"}, none).status();
  absl::Status covered_nowhere =
      ResolveTokenRequest(config, "", {"manage:apis"}, none).status();
  EXPECT_THAT(covered_elsewhere, StatusIs(absl::StatusCode::kPermissionDenied,
                                          Not(HasSubstr("design-center"))));
  EXPECT_EQ(covered_nowhere.code(), covered_elsewhere.code());
  std::string message(covered_elsewhere.message());
  message.replace(message.find("view:design_center"), 18, "manage:apis");
  EXPECT_EQ(std::string(covered_nowhere.message()), message);
}

TEST(NormalizeTokenRequestTest, SortsAndDeduplicatesValidScopes) {
  auto scopes = NormalizeTokenRequest("any-app", {"b", "a", "b"});
  ASSERT_THAT(scopes, IsOk());
  EXPECT_THAT(*scopes, ElementsAre("a", "b"));
  scopes = NormalizeTokenRequest("", {});
  ASSERT_THAT(scopes, IsOk());
  EXPECT_THAT(*scopes, IsEmpty());
  EXPECT_THAT(NormalizeTokenRequest("bad name", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("app")));
  EXPECT_THAT(NormalizeTokenRequest("a", {"two words"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scope")));
  EXPECT_THAT(NormalizeTokenRequest("a", std::vector<std::string>(101, "x")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ScopesNotHeldTest, ListsWhatTheAppLacks) {
  Config config = TwoApps();
  const AppConfig& narrow = config.apps[1];
  EXPECT_THAT(ScopesNotHeld(narrow, {"profile", "read:exchange"}), IsEmpty());
  EXPECT_THAT(ScopesNotHeld(narrow, {"a", "read:exchange", "z"}),
              ElementsAre("a", "z"));
}

TEST(MakeTokenRequestTest, UpstreamScopesOnlyForSendScopeApps) {
  Config config = TwoApps();
  ResolvedTokenRequest wide =
      MakeTokenRequest(config.apps[0], {"read:exchange"});
  EXPECT_EQ(wide.app, &config.apps[0]);
  EXPECT_EQ(wide.upstream.app, "design-center");
  EXPECT_THAT(wide.upstream.scopes, IsEmpty());
  EXPECT_THAT(MakeTokenRequest(config.apps[2], {"b"}).upstream.scopes,
              ElementsAre("b"));
  EXPECT_THAT(MakeTokenRequest(config.apps[2], {}).upstream.scopes,
              ElementsAre("a", "b"));
}

}  // namespace
}  // namespace tokenbroker
