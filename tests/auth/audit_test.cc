#include "service/auth/audit.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

AuditRecord CallRecord() {
  AuditRecord record;
  record.time = absl::FromUnixMillis(1700000000123);
  record.event = "use";
  record.caller = "orders";
  record.auth = "mtls";
  record.principal = "spiffe://cluster.local/ns/shop/sa/orders";
  record.peer = "ipv4:10.0.0.7:5321";
  record.rpc = "TokenBroker.Call";
  record.app = "design-center";
  record.scopes = {"view:environment"};
  record.http_method = "GET";
  record.path = "/accounts/api/me?access_token=leaked&x=1";
  record.decision = "allow";
  record.reason = "route GET /accounts/api/me";
  record.grpc_status = "OK";
  record.upstream_status = 200;
  record.latency = absl::Microseconds(1500);
  record.token_fingerprint = "0123456789ab";
  return record;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST(AuditRecordToJsonTest, HasEveryFieldOnOneLine) {
  std::string line = AuditRecordToJson(CallRecord());
  EXPECT_EQ(line.find('\n'), std::string::npos);
  nlohmann::json json = nlohmann::json::parse(line);
  EXPECT_EQ(json["ts"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(json["event"], "use");
  EXPECT_EQ(json["caller"], "orders");
  EXPECT_EQ(json["auth"], "mtls");
  EXPECT_EQ(json["principal"], "spiffe://cluster.local/ns/shop/sa/orders");
  EXPECT_EQ(json["peer"], "ipv4:10.0.0.7:5321");
  EXPECT_EQ(json["rpc"], "TokenBroker.Call");
  EXPECT_EQ(json["app"], "design-center");
  EXPECT_EQ(json["scopes"], nlohmann::json::array({"view:environment"}));
  EXPECT_EQ(json["method"], "GET");
  EXPECT_EQ(json["path"], "/accounts/api/me");
  EXPECT_EQ(json["decision"], "allow");
  EXPECT_EQ(json["reason"], "route GET /accounts/api/me");
  EXPECT_EQ(json["grpc_status"], "OK");
  EXPECT_EQ(json["upstream_status"], 200);
  EXPECT_DOUBLE_EQ(json["latency_ms"].get<double>(), 1.5);
  EXPECT_EQ(json["token"], "0123456789ab");
}

TEST(AuditRecordToJsonTest, TimestampIsRfc3339UtcWithMilliseconds) {
  // The hand-written formatter against absl::FormatTime, across leap days,
  // year ends, the epoch, pre-epoch times, sub-millisecond truncation and
  // years outside 0..9999 (which it leaves to FormatTime).
  const absl::Time times[] = {
      absl::UnixEpoch(),
      absl::FromUnixMillis(1700000000123),
      absl::FromUnixMillis(951782400999),      // 2000-02-29T00:00:00.999Z
      absl::FromUnixMillis(1735689599999),     // 2024-12-31T23:59:59.999Z
      absl::FromUnixMicros(1700000000123999),  // .123999 -> .123
      absl::FromUnixMillis(-1),                // 1969-12-31T23:59:59.999Z
      absl::FromUnixSeconds(253402300800),     // 10000-01-01T00:00:00Z
      absl::FromUnixSeconds(-62167219201),     // -0001-12-31T23:59:59Z
  };
  for (absl::Time time : times) {
    AuditRecord record = CallRecord();
    record.time = time;
    nlohmann::json json = nlohmann::json::parse(AuditRecordToJson(record));
    EXPECT_EQ(json["ts"], absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time,
                                           absl::UTCTimeZone()));
  }
  // RFC 3339 has four-digit years, where FormatTime's %Y does not pad.
  AuditRecord record = CallRecord();
  record.time = absl::FromUnixSeconds(-62167219200);
  EXPECT_EQ(nlohmann::json::parse(AuditRecordToJson(record))["ts"],
            "0000-01-01T00:00:00.000Z");
}

TEST(AuditRecordToJsonTest, QueryStringIsDropped) {
  std::string line = AuditRecordToJson(CallRecord());
  EXPECT_THAT(line, Not(HasSubstr("leaked")));
  EXPECT_THAT(line, Not(HasSubstr("access_token")));
  EXPECT_THAT(line, Not(HasSubstr("?")));
}

TEST(AuditRecordToJsonTest, DenialOfAnUnknownCaller) {
  AuditRecord record;
  record.time = absl::UnixEpoch();
  record.event = "decision";
  record.rpc = "TokenBroker.GetToken";
  record.decision = "deny";
  record.reason = "no caller identity";
  record.grpc_status = "UNAUTHENTICATED";
  nlohmann::json json = nlohmann::json::parse(AuditRecordToJson(record));
  EXPECT_EQ(json["caller"], "-");
  EXPECT_EQ(json["auth"], "none");
  EXPECT_EQ(json["decision"], "deny");
  EXPECT_EQ(json["reason"], "no caller identity");
  EXPECT_EQ(json["grpc_status"], "UNAUTHENTICATED");
  // Optional fields are left out rather than empty.
  for (const char* key :
       {"app", "scopes", "method", "path", "upstream_status", "token"}) {
    EXPECT_FALSE(json.contains(key)) << key;
  }
}

TEST(AuditRecordToJsonTest, HostileStringsStayOneValidLine) {
  AuditRecord record = CallRecord();
  record.reason = "line\nbreak \"quoted\" \x01 and invalid \xff utf-8";
  record.caller = "a\r\nb";
  std::string line = AuditRecordToJson(record);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  nlohmann::json json = nlohmann::json::parse(line);
  EXPECT_EQ(json["caller"], "a\r\nb");
}

class FileAuditSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/tokenbroker-audit-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/audit.log";
  }
  void TearDown() override {
    std::remove(path_.c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_;
  std::string path_;
};

TEST_F(FileAuditSinkTest, AppendsOneFlushedLinePerRecord) {
  {
    std::ofstream existing(path_);
    existing << "{\"earlier\":true}\n";
  }
  absl::StatusOr<std::unique_ptr<FileAuditSink>> sink =
      FileAuditSink::Open(path_);
  ASSERT_THAT(sink, IsOk());
  AuditRecord record = CallRecord();
  ASSERT_THAT((*sink)->Write(record), IsOk());
  // Flushed per record: visible to another reader before the sink closes.
  std::vector<std::string> lines =
      absl::StrSplit(ReadAll(path_), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "{\"earlier\":true}");
  EXPECT_EQ(lines[1], AuditRecordToJson(record));

  record.event = "revoke";
  ASSERT_THAT((*sink)->Write(record), IsOk());
  lines = absl::StrSplit(ReadAll(path_), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(lines[2])["event"], "revoke");
  EXPECT_EQ(ReadAll(path_).back(), '\n');
}

TEST_F(FileAuditSinkTest, ConcurrentWritersNeverInterleave) {
  absl::StatusOr<std::unique_ptr<FileAuditSink>> sink =
      FileAuditSink::Open(path_);
  ASSERT_THAT(sink, IsOk());
  constexpr int kThreads = 4;
  constexpr int kRecords = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      AuditRecord record = CallRecord();
      record.caller = absl::StrCat("caller-", t);
      for (int i = 0; i < kRecords; ++i) {
        EXPECT_THAT((*sink)->Write(record), IsOk());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<std::string> lines =
      absl::StrSplit(ReadAll(path_), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kRecords));
  for (const std::string& line : lines) {
    EXPECT_NO_THROW(nlohmann::json::parse(line)) << line;
  }
}

TEST_F(FileAuditSinkTest, OpenFailsForAnUnwritablePath) {
  absl::StatusOr<std::unique_ptr<FileAuditSink>> sink =
      FileAuditSink::Open(dir_ + "/no/such/dir/audit.log");
  EXPECT_THAT(sink, StatusIs(absl::StatusCode::kUnavailable,
                             HasSubstr("no/such/dir/audit.log")));
}

TEST_F(FileAuditSinkTest, WriteToAFullDeviceIsUnavailable) {
  absl::StatusOr<std::unique_ptr<FileAuditSink>> sink =
      FileAuditSink::Open("/dev/full");
  ASSERT_THAT(sink, IsOk());
  AuditRecord record = CallRecord();
  EXPECT_THAT((*sink)->Write(record),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("/dev/full")));
  // It keeps failing (and keeps not crashing) on later records.
  EXPECT_THAT((*sink)->Write(record), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(FileAuditSinkTest, AsynchronousSinkWritesEveryRecordInOrder) {
  {
    absl::StatusOr<std::unique_ptr<FileAuditSink>> sink =
        FileAuditSink::Open(path_, /*synchronous=*/false);
    ASSERT_THAT(sink, IsOk());
    AuditRecord record = CallRecord();
    for (int i = 0; i < 500; ++i) {
      record.caller = absl::StrCat("caller-", i);
      ASSERT_THAT((*sink)->Write(record), IsOk());
    }
  }  // The destructor writes what is still queued.
  std::vector<std::string> lines =
      absl::StrSplit(ReadAll(path_), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 500u);
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ(nlohmann::json::parse(lines[i])["caller"],
              absl::StrCat("caller-", i));
  }
}

TEST_F(FileAuditSinkTest, AsynchronousSinkReportsAFailingLog) {
  absl::StatusOr<std::unique_ptr<FileAuditSink>> sink =
      FileAuditSink::Open("/dev/full", /*synchronous=*/false);
  ASSERT_THAT(sink, IsOk());
  AuditRecord record = CallRecord();
  // The first write is only queued; once the writer has failed, later
  // writes say so. Bounded: 10,000 tries.
  absl::Status status;
  for (int i = 0; i < 10000 && status.ok(); ++i) {
    status = (*sink)->Write(record);
    if (status.ok()) absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("/dev/full")));
}

TEST(AuditRecordToJsonTest, AnyTextGivesValidJson) {
  AuditRecord record = CallRecord();
  record.reason = std::string("quote\" back\\ nl\n tab\t nul") +
                  std::string(1, '\0') +
                  "\x01 bad\xff\xc3( utf8 \xc3\xa9 \xf0\x9f\x98\x80";
  record.caller = "\xed\xa0\x80surrogate";
  nlohmann::json json = nlohmann::json::parse(AuditRecordToJson(record));
  std::string reason = json["reason"];
  EXPECT_NE(reason.find("quote\" back\\ nl\n tab\t nul"), std::string::npos);
  EXPECT_NE(reason.find("\xc3\xa9"), std::string::npos);          // kept
  EXPECT_NE(reason.find("\xf0\x9f\x98\x80"), std::string::npos);  // kept
  EXPECT_NE(reason.find("\xef\xbf\xbd"), std::string::npos);      // replaced
  EXPECT_EQ(json["caller"].get<std::string>().find("\xed"), std::string::npos);
}

TEST(NullAuditSinkTest, AcceptsEverything) {
  NullAuditSink sink;
  EXPECT_THAT(sink.Write(CallRecord()), IsOk());
}

}  // namespace
}  // namespace tokenbroker
