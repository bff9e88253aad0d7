#include "service/grpc/active_rpcs.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

// A stream that records what the registry told it.
class RecordingStream final : public ActiveRpcs::Stream {
 public:
  explicit RecordingStream(bool allowed) : allowed_(allowed) {}
  bool Recheck(const std::shared_ptr<const Config>&) override {
    ++rechecks;
    return !allowed_;
  }
  void End(const absl::Status& status) override {
    ended = status;
    ended_note.Notify();
  }

  std::atomic<int> rechecks{0};
  absl::Status ended;
  absl::Notification ended_note;

 private:
  const bool allowed_;
};

LimitsConfig Limits() {
  LimitsConfig limits;
  limits.max_calls_in_flight = 3;
  limits.max_calls_per_caller = 2;
  limits.max_watches_per_caller = 1;
  limits.max_stream_buffer_bytes = 1000;
  return limits;
}

class ActiveRpcsTest : public ::testing::Test {
 protected:
  TimerQueue timers_;
  ActiveRpcs active_{timers_, Limits()};
};

TEST_F(ActiveRpcsTest, CallsPerCallerAndInTotalAreBounded) {
  auto a1 = active_.Register(ActiveRpcs::Kind::kCall, "a", nullptr);
  auto a2 = active_.Register(ActiveRpcs::Kind::kCallStream, "a",
                             std::make_shared<RecordingStream>(true));
  ASSERT_THAT(a1.status(), IsOk());
  ASSERT_THAT(a2.status(), IsOk());
  EXPECT_THAT(active_.Register(ActiveRpcs::Kind::kCall, "a", nullptr).status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("limits.max_calls_per_caller = 2")));
  auto b1 = active_.Register(ActiveRpcs::Kind::kCall, "b", nullptr);
  ASSERT_THAT(b1.status(), IsOk());
  EXPECT_THAT(active_.Register(ActiveRpcs::Kind::kCall, "c", nullptr).status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("limits.max_calls_in_flight = 3")));
  // A finished Call frees its place.
  a1->Reset();
  EXPECT_THAT(active_.Register(ActiveRpcs::Kind::kCall, "c", nullptr).status(),
              IsOk());
  ActiveRpcStats stats = active_.stats();
  EXPECT_EQ(stats.refused["max_calls_per_caller"], 1);
  EXPECT_EQ(stats.refused["max_calls_in_flight"], 1);
}

TEST_F(ActiveRpcsTest, WatchesPerCallerAreBoundedApartFromCalls) {
  auto w = active_.Register(ActiveRpcs::Kind::kWatch, "a",
                            std::make_shared<RecordingStream>(true));
  ASSERT_THAT(w.status(), IsOk());
  EXPECT_THAT(active_
                  .Register(ActiveRpcs::Kind::kWatch, "a",
                            std::make_shared<RecordingStream>(true))
                  .status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("max_watches_per_caller")));
  EXPECT_THAT(active_.Register(ActiveRpcs::Kind::kCall, "a", nullptr).status(),
              IsOk());
  EXPECT_EQ(active_.stats().watches_open, 1);
}

TEST_F(ActiveRpcsTest, RecheckReachesOpenStreamsAndCountsThoseEnded) {
  auto kept = std::make_shared<RecordingStream>(true);
  auto cut = std::make_shared<RecordingStream>(false);
  auto r1 = active_.Register(ActiveRpcs::Kind::kWatch, "a", kept);
  auto r2 = active_.Register(ActiveRpcs::Kind::kCallStream, "b", cut);
  auto config = std::make_shared<const Config>();
  active_.Recheck(config);
  EXPECT_EQ(kept->rechecks.load(), 1);
  EXPECT_EQ(cut->rechecks.load(), 1);
  EXPECT_EQ(active_.stats().streams_ended["grant_removed"], 1);
  // An unregistered stream is not rechecked any more.
  r1->Reset();
  active_.Recheck(config);
  EXPECT_EQ(kept->rechecks.load(), 1);
}

TEST_F(ActiveRpcsTest, StreamsEndAtTheirMaximumLifetime) {
  LimitsConfig limits = Limits();
  limits.max_stream_lifetime = absl::Milliseconds(1);
  active_.SetLimits(limits);
  auto stream = std::make_shared<RecordingStream>(true);
  auto registration = active_.Register(ActiveRpcs::Kind::kWatch, "a", stream);
  ASSERT_THAT(registration.status(), IsOk());
  ASSERT_TRUE(
      stream->ended_note.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_THAT(stream->ended, StatusIs(absl::StatusCode::kUnavailable,
                                      HasSubstr("max_stream_lifetime")));
  EXPECT_EQ(active_.stats().streams_ended["max_lifetime"], 1);
}

TEST_F(ActiveRpcsTest, UnregisteredStreamIsNotEndedByItsTimer) {
  LimitsConfig limits = Limits();
  limits.max_stream_lifetime = absl::Hours(1);
  active_.SetLimits(limits);
  auto stream = std::make_shared<RecordingStream>(true);
  {
    auto registration = active_.Register(ActiveRpcs::Kind::kWatch, "a", stream);
    ASSERT_THAT(registration.status(), IsOk());
  }
  EXPECT_EQ(active_.stats().watches_open, 0);
  EXPECT_FALSE(stream->ended_note.HasBeenNotified());
}

TEST_F(ActiveRpcsTest, StreamBufferBudgetIsSharedByAllStreams) {
  EXPECT_THAT(active_.ReserveStreamBytes(600), IsOk());
  EXPECT_THAT(active_.ReserveStreamBytes(300), IsOk());
  EXPECT_THAT(active_.ReserveStreamBytes(200),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("max_stream_buffer_bytes = 1000")));
  EXPECT_EQ(active_.stats().stream_buffer_bytes, 900);
  active_.ReleaseStreamBytes(600);
  EXPECT_THAT(active_.ReserveStreamBytes(200), IsOk());
  EXPECT_EQ(active_.stats().refused["max_stream_buffer_bytes"], 1);
}

}  // namespace
}  // namespace tokenbroker
