#include "service/store/file_grant_store.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/common/token_fingerprint.h"
#include "tests/store/store_test_util.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::MakeKeyRing;
using ::tokenbroker::testing::RandomSealKey;
using ::tokenbroker::testing::ReadWholeFile;
using ::tokenbroker::testing::SampleGrant;
using ::tokenbroker::testing::StatusIs;
using ::tokenbroker::testing::TempDir;
using ::tokenbroker::testing::WriteWholeFile;
using WriteStep = FileGrantStore::WriteStep;

// What every refresh token in these tests contains (SampleGrant).
constexpr char kSecretMarker[] = "rt-SECRET";

void ExpectSameGrant(const UserGrant& actual, const UserGrant& expected) {
  EXPECT_EQ(actual.app, expected.app);
  EXPECT_EQ(actual.user_id, expected.user_id);
  EXPECT_EQ(actual.username, expected.username);
  EXPECT_TRUE(actual.refresh_token == expected.refresh_token)
      << "refresh token of " << actual.app << "/" << actual.user_id;
  EXPECT_EQ(actual.scopes, expected.scopes);
  EXPECT_EQ(actual.connected_at, expected.connected_at);
  EXPECT_EQ(actual.updated_at, expected.updated_at);
  EXPECT_EQ(actual.needs_reauthorization, expected.needs_reauthorization);
  EXPECT_EQ(actual.reauthorization_reason, expected.reauthorization_reason);
  EXPECT_EQ(actual.version, expected.version);
}

std::string StepName(WriteStep step) {
  switch (step) {
    case WriteStep::kTempWritten:
      return "temp written";
    case WriteStep::kTempSynced:
      return "temp synced";
    case WriteStep::kRenamed:
      return "renamed";
  }
  return "?";
}

class FileGrantStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<FileGrantStore> OpenStore(
      std::shared_ptr<const KeyRing> keys) {
    absl::StatusOr<std::unique_ptr<FileGrantStore>> store =
        FileGrantStore::Open(dir_, std::move(keys));
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::unique_ptr<FileGrantStore> OpenStore() { return OpenStore(keys_); }

  std::string PathOf(const std::string& app, const std::string& user_id) {
    return dir_ + "/" + FileGrantStore::RecordFileName(app, user_id);
  }

  std::vector<std::string> ListDir() {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  bool AnyTempFile() {
    std::vector<std::string> names = ListDir();
    return std::any_of(names.begin(), names.end(), [](const std::string& n) {
      return absl::StrContains(n, ".tmp.");
    });
  }

  // The key id a record file is sealed with.
  std::string KeyIdOfFile(const std::string& path) {
    nlohmann::json file = nlohmann::json::parse(ReadWholeFile(path));
    absl::StatusOr<std::string> id =
        KeyRing::KeyIdOf(file.at("sealed").get<std::string>());
    EXPECT_THAT(id, IsOk());
    return id.value_or("");
  }

  // Every text a test saw, for the secret scan.
  void Remember(const absl::Status& status) {
    texts_.emplace_back(status.ToString());
  }
  void Remember(const GrantStoreLoad& load) {
    for (const std::string& line : load.problems) texts_.push_back(line);
    for (const std::string& line : load.warnings) texts_.push_back(line);
  }
  // LoadAll() with its log captured; neither holds a refresh token.
  GrantStoreLoad LoadAllCapturingLog(FileGrantStore& store, std::string* log) {
    ::testing::internal::CaptureStderr();
    GrantStoreLoad load = store.LoadAll();
    *log = ::testing::internal::GetCapturedStderr();
    EXPECT_THAT(*log, Not(HasSubstr(kSecretMarker)));
    Remember(load);
    return load;
  }
  void ExpectNoSecretInTexts() {
    for (const std::string& text : texts_) {
      EXPECT_THAT(text, Not(HasSubstr(kSecretMarker)));
    }
  }

  TempDir root_;
  const std::string dir_ = root_.path() + "/grants";
  const SealKey k1_ = RandomSealKey("k1");
  const SealKey k2_ = RandomSealKey("k2");
  const std::shared_ptr<const KeyRing> keys_ = MakeKeyRing({k1_});
  std::vector<std::string> texts_;
};

TEST_F(FileGrantStoreTest, OpenCreatesAPrivateDirectoryAndLoadsNothing) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  struct stat info;
  ASSERT_EQ(::stat(dir_.c_str(), &info), 0);
  EXPECT_TRUE(S_ISDIR(info.st_mode));
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  GrantStoreLoad load = store->LoadAll();
  EXPECT_THAT(load.grants, IsEmpty());
  EXPECT_THAT(load.problems, IsEmpty());
  EXPECT_THAT(load.warnings, IsEmpty());
}

TEST_F(FileGrantStoreTest, PutThenLoadAllInANewStoreThenDelete) {
  UserGrant a1 = SampleGrant("app-a", "user-1");
  UserGrant a2 = SampleGrant("app-a", "user-2");
  a2.needs_reauthorization = true;
  a2.reauthorization_reason = "invalid_grant: refresh token revoked";
  a2.updated_at = absl::InfiniteFuture();
  UserGrant b1 = SampleGrant("app-b", "user-1");
  b1.refresh_token = "rt-SECRET-with \"quotes\" and \\backslashes\\";
  b1.username = "Zoë \"z\" O'Neil";
  b1.scopes.clear();
  {
    auto store = OpenStore();
    for (const UserGrant& grant : {b1, a2, a1}) {
      ASSERT_THAT(store->Put(grant), IsOk());
    }
  }
  auto store = OpenStore();
  GrantStoreLoad load = store->LoadAll();
  EXPECT_THAT(load.problems, IsEmpty());
  EXPECT_THAT(load.warnings, IsEmpty());
  ASSERT_THAT(load.grants, SizeIs(3));
  ExpectSameGrant(load.grants[0], a1);
  ExpectSameGrant(load.grants[1], a2);
  ExpectSameGrant(load.grants[2], b1);

  ASSERT_THAT(store->Delete("app-a", "user-2"), IsOk());
  EXPECT_THAT(store->Delete("app-a", "user-2"), IsOk());  // absent: OK
  EXPECT_THAT(store->Delete("app-c", "nobody"), IsOk());
  EXPECT_THAT(store->Delete("", "nobody"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  store.reset();
  load = OpenStore()->LoadAll();
  ASSERT_THAT(load.grants, SizeIs(2));
  ExpectSameGrant(load.grants[0], a1);
  ExpectSameGrant(load.grants[1], b1);
}

TEST_F(FileGrantStoreTest, PutReplacesTheRecord) {
  auto store = OpenStore();
  UserGrant grant = SampleGrant("app", "user");
  ASSERT_THAT(store->Put(grant), IsOk());
  grant.refresh_token = "rt-SECRET-rotated";
  grant.version = 4;
  ASSERT_THAT(store->Put(grant), IsOk());
  EXPECT_THAT(ListDir(),
              ElementsAre(FileGrantStore::RecordFileName("app", "user")));
  GrantStoreLoad load = store->LoadAll();
  ASSERT_THAT(load.grants, SizeIs(1));
  ExpectSameGrant(load.grants[0], grant);
}

TEST_F(FileGrantStoreTest, RecordFileHoldsRoutingFieldsInClearTheRestSealed) {
  auto store = OpenStore();
  UserGrant grant = SampleGrant("app", "user");
  ASSERT_THAT(store->Put(grant), IsOk());
  const std::string path = PathOf("app", "user");
  EXPECT_EQ(FileGrantStore::RecordFileName("app", "user"),
            Sha256Hex(std::string("app\0user", 8)) + ".grant");
  struct stat info;
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);

  std::string content = ReadWholeFile(path);
  EXPECT_THAT(content, AllOf(Not(HasSubstr(kSecretMarker)),
                             Not(HasSubstr(grant.username)),
                             Not(HasSubstr("view:environment"))));
  nlohmann::json file = nlohmann::json::parse(content);
  EXPECT_EQ(file.at("format"), 1);
  EXPECT_EQ(file.at("app"), "app");
  EXPECT_EQ(file.at("user_id"), "user");
  const std::string sealed = file.at("sealed");
  EXPECT_EQ(*KeyRing::KeyIdOf(sealed), "k1");

  // The sealed part is the JSON of the whole record, bound to app and user.
  const std::string aad =
      std::string("tokenbroker/grant/v1") + '\0' + "app" + '\0' + "user";
  absl::StatusOr<std::string> plaintext = keys_->Open(sealed, aad);
  ASSERT_THAT(plaintext, IsOk());
  nlohmann::json record = nlohmann::json::parse(*plaintext);
  EXPECT_EQ(record.at("refresh_token"), grant.refresh_token);
  EXPECT_EQ(record.at("username"), grant.username);
  EXPECT_EQ(record.at("version"), 3);
  EXPECT_THAT(keys_->Open(sealed, aad + "x"),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(FileGrantStoreTest, InvalidGrantsAreRefusedAndWriteNothing) {
  auto store = OpenStore();
  UserGrant grant = SampleGrant("app", "user");
  grant.refresh_token += "\r\nX-Injected: 1";
  absl::Status status = store->Put(grant);
  Remember(status);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("refresh_token")));
  grant = SampleGrant("", "user");
  EXPECT_THAT(store->Put(grant), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ListDir(), IsEmpty());
  ExpectNoSecretInTexts();
}

TEST_F(FileGrantStoreTest, ARecordCopiedToAnotherFileNameIsAProblem) {
  auto store = OpenStore();
  ASSERT_THAT(store->Put(SampleGrant("app", "alice")), IsOk());
  ASSERT_THAT(store->Put(SampleGrant("app", "bob")), IsOk());
  ASSERT_THAT(store->Put(SampleGrant("app", "carol")), IsOk());
  // Alice's record under Bob's name.
  std::string alice = ReadWholeFile(PathOf("app", "alice"));
  WriteWholeFile(PathOf("app", "bob"), alice);
  // Alice's record with its clear user edited to Carol, under Carol's name:
  // the name matches, the seal's associated data does not.
  WriteWholeFile(PathOf("app", "carol"),
                 absl::StrReplaceAll(alice, {{"\"alice\"", "\"carol\""}}));

  GrantStoreLoad load = store->LoadAll();
  Remember(load);
  ASSERT_THAT(load.grants, SizeIs(1));
  EXPECT_EQ(load.grants[0].user_id, "alice");
  EXPECT_THAT(load.problems,
              ::testing::UnorderedElementsAre(
                  AllOf(HasSubstr(PathOf("app", "bob")),
                        HasSubstr("not the hash"), HasSubstr("user 'alice'")),
                  AllOf(HasSubstr(PathOf("app", "carol")),
                        HasSubstr("does not authenticate"),
                        HasSubstr("user 'carol'"))));
  // Nothing was removed or rewritten.
  EXPECT_EQ(ReadWholeFile(PathOf("app", "bob")), alice);
  ExpectNoSecretInTexts();
}

TEST_F(FileGrantStoreTest, DamagedRecordsAreReportedAndTheOthersLoad) {
  auto store = OpenStore();
  for (const char* user : {"u1", "u2", "u3", "u4", "u5"}) {
    ASSERT_THAT(store->Put(SampleGrant("app", user)), IsOk());
  }
  const std::string truncated = PathOf("app", "u1");
  std::string content = ReadWholeFile(truncated);
  WriteWholeFile(truncated, content.substr(0, content.size() / 2));
  const std::string garbage = PathOf("app", "u2");
  WriteWholeFile(garbage, std::string("\x00\x13\xff garbage \x01", 14));
  const std::string empty = PathOf("app", "u3");
  WriteWholeFile(empty, "");
  const std::string tampered = PathOf("app", "u4");
  content = ReadWholeFile(tampered);
  size_t sealed_at = content.find("tbx1.k1.");
  ASSERT_NE(sealed_at, std::string::npos);
  char& c = content[sealed_at + 40];
  c = c == 'A' ? 'B' : 'A';
  WriteWholeFile(tampered, content);

  GrantStoreLoad load = store->LoadAll();
  Remember(load);
  ASSERT_THAT(load.grants, SizeIs(1));
  ExpectSameGrant(load.grants[0], SampleGrant("app", "u5"));
  EXPECT_THAT(load.problems,
              ::testing::UnorderedElementsAre(
                  AllOf(HasSubstr(truncated), HasSubstr("not a JSON object")),
                  AllOf(HasSubstr(garbage), HasSubstr("not a JSON object")),
                  AllOf(HasSubstr(empty), HasSubstr("empty")),
                  AllOf(HasSubstr(tampered), HasSubstr("does not authenticate"),
                        HasSubstr("app 'app', user 'u4'"))));
  // Left in place for an operator.
  for (const std::string& path : {truncated, garbage, empty, tampered}) {
    EXPECT_TRUE(std::filesystem::exists(path)) << path;
  }
  ExpectNoSecretInTexts();
}

TEST_F(FileGrantStoreTest, RecordsUnderAWrongOrMissingKeyAreReported) {
  {
    auto store = OpenStore();
    ASSERT_THAT(store->Put(SampleGrant("app", "u1")), IsOk());
  }
  const std::string path = PathOf("app", "u1");
  const std::string content = ReadWholeFile(path);
  {
    // Another key under the same id (a wrong Secret mounted).
    auto store = OpenStore(MakeKeyRing({RandomSealKey("k1")}));
    GrantStoreLoad load = store->LoadAll();
    Remember(load);
    EXPECT_THAT(load.grants, IsEmpty());
    EXPECT_THAT(load.problems,
                ElementsAre(AllOf(HasSubstr(path),
                                  HasSubstr("does not authenticate with key "
                                            "'k1'"),
                                  HasSubstr("user 'u1'"))));
  }
  {
    // The old key removed too early.
    auto store = OpenStore(MakeKeyRing({k2_}));
    GrantStoreLoad load = store->LoadAll();
    Remember(load);
    EXPECT_THAT(load.grants, IsEmpty());
    EXPECT_THAT(load.problems,
                ElementsAre(AllOf(HasSubstr(path), HasSubstr("'k1'"),
                                  HasSubstr("not in the key ring"))));
  }
  EXPECT_EQ(ReadWholeFile(path), content);
  // With the right key it loads again.
  GrantStoreLoad load = OpenStore()->LoadAll();
  EXPECT_THAT(load.problems, IsEmpty());
  EXPECT_THAT(load.grants, SizeIs(1));
  ExpectNoSecretInTexts();
}

TEST_F(FileGrantStoreTest, RecordsUnderAnOldKeyAreResealedOnLoad) {
  UserGrant u1 = SampleGrant("app", "u1");
  UserGrant u2 = SampleGrant("app", "u2");
  {
    auto store = OpenStore(MakeKeyRing({k1_}));
    ASSERT_THAT(store->Put(u1), IsOk());
    ASSERT_THAT(store->Put(u2), IsOk());
  }
  {
    auto store = OpenStore(MakeKeyRing({k2_, k1_}));
    std::string log;
    GrantStoreLoad load = LoadAllCapturingLog(*store, &log);
    EXPECT_THAT(log, HasSubstr("re-sealed"));
    EXPECT_THAT(load.problems, IsEmpty());
    EXPECT_THAT(load.warnings, IsEmpty());
    ASSERT_THAT(load.grants, SizeIs(2));
    ExpectSameGrant(load.grants[0], u1);
    ExpectSameGrant(load.grants[1], u2);
  }
  EXPECT_EQ(KeyIdOfFile(PathOf("app", "u1")), "k2");
  EXPECT_EQ(KeyIdOfFile(PathOf("app", "u2")), "k2");
  EXPECT_FALSE(AnyTempFile());

  // The old key can go now.
  GrantStoreLoad load = OpenStore(MakeKeyRing({k2_}))->LoadAll();
  EXPECT_THAT(load.problems, IsEmpty());
  ASSERT_THAT(load.grants, SizeIs(2));
  ExpectSameGrant(load.grants[0], u1);
  ExpectNoSecretInTexts();
}

TEST_F(FileGrantStoreTest, AFailedResealIsAWarningAndTheRecordStillLoads) {
  {
    auto store = OpenStore(MakeKeyRing({k1_}));
    ASSERT_THAT(store->Put(SampleGrant("app", "u1")), IsOk());
  }
  auto store = OpenStore(MakeKeyRing({k2_, k1_}));
  store->SetWriteHookForTesting([](WriteStep) {
    return absl::UnavailableError("injected: no space left");
  });
  std::string log;
  GrantStoreLoad load = LoadAllCapturingLog(*store, &log);
  EXPECT_THAT(load.problems, IsEmpty());
  ASSERT_THAT(load.grants, SizeIs(1));
  EXPECT_THAT(load.warnings, ElementsAre(AllOf(HasSubstr(PathOf("app", "u1")),
                                               HasSubstr("keep key 'k1'"),
                                               HasSubstr("no space left"))));
  EXPECT_EQ(KeyIdOfFile(PathOf("app", "u1")), "k1");
  EXPECT_FALSE(AnyTempFile());
  ExpectNoSecretInTexts();
}

TEST_F(FileGrantStoreTest, LeftoverTemporaryFilesAreRemovedOthersKept) {
  auto store = OpenStore();
  ASSERT_THAT(store->Put(SampleGrant("app", "u1")), IsOk());
  const std::string stale =
      FileGrantStore::RecordFileName("app", "u1") + ".tmp.0123456789abcdef";
  WriteWholeFile(dir_ + "/" + stale, "{\"format\":1,\"app\":\"ap");
  WriteWholeFile(dir_ + "/notes.tmp.txt", "an operator's file");
  WriteWholeFile(dir_ + "/README", "an operator's file");

  std::string log;
  GrantStoreLoad load = LoadAllCapturingLog(*store, &log);
  EXPECT_THAT(load.problems, IsEmpty());
  ASSERT_THAT(load.grants, SizeIs(1));
  EXPECT_THAT(load.warnings,
              ::testing::UnorderedElementsAre(
                  AllOf(HasSubstr(stale), HasSubstr("removed")),
                  HasSubstr("notes.tmp.txt"), HasSubstr("README")));
  EXPECT_THAT(log, AllOf(HasSubstr("leftover temporary"), HasSubstr(stale)));
  EXPECT_THAT(ListDir(),
              ElementsAre(FileGrantStore::RecordFileName("app", "u1"), "README",
                          "notes.tmp.txt"));
}

// A Put of `grant` in a child process that is killed (SIGKILL) at `step`.
void PutAndDieAt(FileGrantStore* store, WriteStep step,
                 const UserGrant& grant) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    store->SetWriteHookForTesting([step](WriteStep at) {
      if (at == step) ::kill(::getpid(), SIGKILL);
      return absl::OkStatus();
    });
    (void)store->Put(grant);
    ::_exit(3);  // not reached if the step was
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child was not killed at " << StepName(step);
}

TEST_F(FileGrantStoreTest, ACrashAtAnyStepOfARotationKeepsOldOrNewRecord) {
  for (WriteStep step :
       {WriteStep::kTempWritten, WriteStep::kTempSynced, WriteStep::kRenamed}) {
    SCOPED_TRACE(StepName(step));
    UserGrant old_grant = SampleGrant("app", "user");
    old_grant.refresh_token = "rt-SECRET-old";
    UserGrant new_grant = old_grant;
    new_grant.refresh_token = "rt-SECRET-new";
    new_grant.version = old_grant.version + 1;

    auto store = OpenStore();
    ASSERT_THAT(store->Put(old_grant), IsOk());
    PutAndDieAt(store.get(), step, new_grant);
    // Before the rename, the crash leaves the temporary file behind.
    EXPECT_EQ(AnyTempFile(), step != WriteStep::kRenamed);
    store.reset();

    store = OpenStore();  // as the restarted broker does
    GrantStoreLoad load = store->LoadAll();
    Remember(load);
    EXPECT_THAT(load.problems, IsEmpty());
    ASSERT_THAT(load.grants, SizeIs(1));
    ExpectSameGrant(load.grants[0],
                    step == WriteStep::kRenamed ? new_grant : old_grant);
    EXPECT_FALSE(AnyTempFile());
    // And the store works on.
    ASSERT_THAT(store->Put(new_grant), IsOk());
    store.reset();
    load = OpenStore()->LoadAll();
    ASSERT_THAT(load.grants, SizeIs(1));
    ExpectSameGrant(load.grants[0], new_grant);
    ASSERT_THAT(OpenStore()->Delete("app", "user"), IsOk());
  }
  ExpectNoSecretInTexts();
}

TEST_F(FileGrantStoreTest, AFailureAtAnyWriteStepLeavesOldOrNewAndNoTempFile) {
  for (WriteStep step :
       {WriteStep::kTempWritten, WriteStep::kTempSynced, WriteStep::kRenamed}) {
    SCOPED_TRACE(StepName(step));
    UserGrant old_grant = SampleGrant("app", "user");
    UserGrant new_grant = old_grant;
    new_grant.refresh_token = "rt-SECRET-new";
    new_grant.version = old_grant.version + 1;

    auto store = OpenStore();
    ASSERT_THAT(store->Put(old_grant), IsOk());
    store->SetWriteHookForTesting([step](WriteStep at) {
      return at == step ? absl::UnavailableError("injected I/O error")
                        : absl::OkStatus();
    });
    absl::Status status = store->Put(new_grant);
    Remember(status);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable,
                                 HasSubstr("injected")));
    EXPECT_FALSE(AnyTempFile());
    store->SetWriteHookForTesting(nullptr);
    GrantStoreLoad load = store->LoadAll();
    EXPECT_THAT(load.problems, IsEmpty());
    ASSERT_THAT(load.grants, SizeIs(1));
    ExpectSameGrant(load.grants[0],
                    step == WriteStep::kRenamed ? new_grant : old_grant);
  }
  ExpectNoSecretInTexts();
}

TEST_F(FileGrantStoreTest, WriteErrorsNameTheFileAndTheReason) {
  auto store = OpenStore();
  // A directory where the record's file should be makes the rename fail
  // (file modes would not: the tests may run as root).
  const std::string name = FileGrantStore::RecordFileName("app", "user");
  ASSERT_EQ(::mkdir((dir_ + "/" + name).c_str(), 0700), 0);
  absl::Status status = store->Put(SampleGrant("app", "user"));
  Remember(status);
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("rename"), HasSubstr(dir_ + "/" + name),
                             HasSubstr("directory"))));
  EXPECT_THAT(ListDir(), ElementsAre(name));  // no temporary file left
  ExpectNoSecretInTexts();
}

TEST_F(FileGrantStoreTest, ConcurrentPutsOfDifferentUsers) {
  auto store = OpenStore();
  constexpr int kThreads = 4;
  constexpr int kUsers = 8;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      for (int version = 1; version <= 2; ++version) {
        for (int u = 0; u < kUsers; ++u) {
          UserGrant grant =
              SampleGrant(absl::StrCat("app-", t), absl::StrCat("user-", u));
          grant.version = version;
          EXPECT_TRUE(store->Put(grant).ok());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  GrantStoreLoad load = store->LoadAll();
  EXPECT_THAT(load.problems, IsEmpty());
  ASSERT_THAT(load.grants, SizeIs(kThreads * kUsers));
  for (const UserGrant& grant : load.grants) {
    UserGrant expected = SampleGrant(grant.app, grant.user_id);
    expected.version = 2;
    ExpectSameGrant(grant, expected);
  }
  EXPECT_FALSE(AnyTempFile());
}

TEST_F(FileGrantStoreTest, RefusesADirectoryOthersMayWrite) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  for (mode_t mode : {0770, 0702, 0777}) {
    ASSERT_EQ(::chmod(dir_.c_str(), mode), 0);
    EXPECT_THAT(FileGrantStore::Open(dir_, keys_),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         AllOf(HasSubstr(dir_),
                               HasSubstr("writable by group or others"))))
        << std::oct << mode;
  }
  ASSERT_EQ(::chmod(dir_.c_str(), 0750), 0);  // group may read: fine
  EXPECT_THAT(FileGrantStore::Open(dir_, keys_), IsOk());
}

TEST_F(FileGrantStoreTest, RefusesADirectoryOwnedByAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown the directory";
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  ASSERT_EQ(::chown(dir_.c_str(), 54321, 54321), 0);
  EXPECT_THAT(FileGrantStore::Open(dir_, keys_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(dir_), HasSubstr("uid 54321"))));
}

TEST_F(FileGrantStoreTest, RefusesADirectoryAnotherStoreHasOpen) {
  auto store = OpenStore();
  EXPECT_THAT(FileGrantStore::Open(dir_, keys_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(dir_), HasSubstr("in use"))));
  store.reset();
  EXPECT_THAT(FileGrantStore::Open(dir_, keys_), IsOk());
}

TEST_F(FileGrantStoreTest, OpenErrorsNameTheDirectory) {
  const std::string missing_parent = root_.path() + "/missing/grants";
  EXPECT_THAT(
      FileGrantStore::Open(missing_parent, keys_),
      StatusIs(absl::StatusCode::kInternal,
               AllOf(HasSubstr(missing_parent), HasSubstr("No such file"))));
  EXPECT_THAT(FileGrantStore::Open("", keys_),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FileGrantStore::Open(dir_, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Every text the store produces in the failure cases above and its log:
// none holds a refresh token.
TEST_F(FileGrantStoreTest, NoRefreshTokenInAnyErrorProblemWarningOrLog) {
  ::testing::internal::CaptureStderr();
  {
    auto store = OpenStore();
    for (const char* user : {"u1", "u2", "u3"}) {
      Remember(store->Put(SampleGrant("app", user)));
    }
    UserGrant bad = SampleGrant("app", "u4");
    bad.refresh_token += "\x01";
    Remember(store->Put(bad));
    store->SetWriteHookForTesting(
        [](WriteStep) { return absl::UnavailableError("injected"); });
    Remember(store->Put(SampleGrant("app", "u5")));
    store->SetWriteHookForTesting(nullptr);
    std::string content = ReadWholeFile(PathOf("app", "u1"));
    WriteWholeFile(PathOf("app", "u1"), content.substr(0, content.size() - 9));
    WriteWholeFile(PathOf("app", "u2"), ReadWholeFile(PathOf("app", "u3")));
    WriteWholeFile(dir_ + "/" + FileGrantStore::RecordFileName("app", "u3") +
                       ".tmp.00000000000000aa",
                   content);
    Remember(store->LoadAll());
  }
  Remember(OpenStore(MakeKeyRing({RandomSealKey("k1")}))->LoadAll());
  Remember(OpenStore(MakeKeyRing({k2_}))->LoadAll());
  Remember(OpenStore(MakeKeyRing({k2_, k1_}))->LoadAll());  // re-seals u3
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, Not(HasSubstr(kSecretMarker)));
  EXPECT_THAT(texts_, Not(IsEmpty()));
  ExpectNoSecretInTexts();
  for (const std::string& name : ListDir()) {
    EXPECT_THAT(ReadWholeFile(dir_ + "/" + name), Not(HasSubstr(kSecretMarker)))
        << name;
  }
}

}  // namespace
}  // namespace tokenbroker
