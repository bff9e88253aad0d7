#include "service/store/memory_grant_store.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/store/store_test_util.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::SampleGrant;
using ::tokenbroker::testing::StatusIs;

TEST(MemoryGrantStoreTest, PutReplacesLoadAllOrdersDeleteRemoves) {
  MemoryGrantStore store;
  ASSERT_THAT(store.Put(SampleGrant("b-app", "u1")), IsOk());
  ASSERT_THAT(store.Put(SampleGrant("a-app", "u2")), IsOk());
  UserGrant newer = SampleGrant("a-app", "u2");
  newer.refresh_token = "rotated";
  newer.version = 4;
  ASSERT_THAT(store.Put(newer), IsOk());

  GrantStoreLoad load = store.LoadAll();
  EXPECT_THAT(load.problems, IsEmpty());
  EXPECT_THAT(load.grants, ElementsAre(Field(&UserGrant::app, "a-app"),
                                       Field(&UserGrant::app, "b-app")));
  EXPECT_EQ(load.grants[0].refresh_token, "rotated");
  EXPECT_EQ(store.Get("a-app", "u2")->version, 4);
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.put_count(), 3);

  EXPECT_THAT(store.Delete("a-app", "u2"), IsOk());
  EXPECT_THAT(store.Delete("a-app", "absent"), IsOk());
  EXPECT_FALSE(store.Get("a-app", "u2").has_value());
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.delete_count(), 2);
}

TEST(MemoryGrantStoreTest, ValidatesAndFailsOnRequest) {
  MemoryGrantStore store;
  UserGrant bad = SampleGrant("app", "u1");
  bad.app.clear();
  EXPECT_THAT(store.Put(bad), StatusIs(absl::StatusCode::kInvalidArgument));

  store.SetFailure(absl::UnavailableError("disk full"));
  EXPECT_THAT(store.Put(SampleGrant("app", "u1")),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store.Delete("app", "u1"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(store.size(), 0u);
  store.SetFailure(absl::OkStatus());
  EXPECT_THAT(store.Put(SampleGrant("app", "u1")), IsOk());
  EXPECT_EQ(store.size(), 1u);
}

}  // namespace
}  // namespace tokenbroker
