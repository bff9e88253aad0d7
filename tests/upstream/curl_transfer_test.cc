#include "service/upstream/curl_transfer.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/upstream/curl_wrappers.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace internal {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

TEST(UrlHostForMessagesTest, NamesOnlyHostAndPort) {
  absl::StatusOr<std::string> host = UrlHostForMessages(
      "https://user:secret@auth.example.com:8443/path/token?code=xyz");
  ASSERT_THAT(host, IsOk());
  EXPECT_EQ(*host, "auth.example.com:8443");
  EXPECT_EQ(*UrlHostForMessages("http://example.com/a"), "example.com");
}

TEST(UrlHostForMessagesTest, RefusesOtherSchemesAndMalformedUrls) {
  EXPECT_THAT(UrlHostForMessages("ftp://example.com/secret"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("only http and https")));
  absl::StatusOr<std::string> bad = UrlHostForMessages("not a url secret");
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("secret")));
}

TEST(CurlSlistAppendTest, BuildsOneOwnedList) {
  CurlSlistPtr list;
  ASSERT_TRUE(CurlSlistAppend(list, "A: 1"));
  ASSERT_TRUE(CurlSlistAppend(list, "B: 2"));
  ASSERT_NE(list, nullptr);
  EXPECT_STREQ(list->data, "A: 1");
  ASSERT_NE(list->next, nullptr);
  EXPECT_STREQ(list->next->data, "B: 2");
  EXPECT_EQ(list->next->next, nullptr);
}  // The list is freed here (ASan/valgrind would report a leak otherwise).

TEST(TransferOfTest, FindsTheTransferAHandleWasConfiguredFor) {
  CurlTransfer transfer;
  transfer.request.url = "http://127.0.0.1:1/";
  transfer.easy = CurlEasyPtr(curl_easy_init());
  ASSERT_NE(transfer.easy, nullptr);
  ASSERT_THAT(ConfigureTransfer(transfer, "", absl::Seconds(1)), IsOk());
  EXPECT_EQ(TransferOf(transfer.easy.get()), &transfer);
  EXPECT_NE(transfer.headers, nullptr);  // At least "Expect:".
}

}  // namespace
}  // namespace internal
}  // namespace tokenbroker
