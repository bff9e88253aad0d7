// SameApp(): whether a reloaded app still fetches the tokens of the same
// connected app, so that its cached tokens may be kept (issue 10, defect
// 11: a {file:} client id switched to another app's id was missed).

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::tokenbroker::testing::IsOk;

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

// A config file with one app whose client id and secret are files; the
// files and the config live in the test's temporary directory.
class SameAppTest : public ::testing::Test {
 protected:
  // A directory of its own: ctest runs each test in a process of its own,
  // in parallel.
  SameAppTest() {
    std::string dir_template = ::testing::TempDir() + "/same_app_XXXXXX";
    EXPECT_NE(mkdtemp(dir_template.data()), nullptr);
    dir_ = dir_template;
    config_path_ = dir_ + "/config.yaml";
    id_path_ = dir_ + "/client_id";
    secret_path_ = dir_ + "/client_secret";
    WriteConfig("");
    WriteFile(id_path_, "design-center-app\n");
    WriteFile(secret_path_, "dc-secret");
  }
  ~SameAppTest() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  void WriteConfig(const std::string& more) {
    WriteFile(config_path_,
              absl::StrCat("apps:\n"
                           "  - name: dc\n"
                           "    base_url: https://anypoint.example\n"
                           "    client_id: {file: ",
                           id_path_,
                           "}\n"
                           "    client_secret: {file: ",
                           secret_path_, "}\n", more));
  }

  AppConfig Load() {
    absl::StatusOr<Config> config = LoadConfigFile(config_path_);
    EXPECT_THAT(config, IsOk());
    if (!config.ok() || config->apps.size() != 1) return AppConfig();
    return config->apps[0];
  }

  std::string dir_, config_path_, id_path_, secret_path_;
};

TEST_F(SameAppTest, UnchangedFilesAreTheSameApp) {
  AppConfig before = Load();
  EXPECT_TRUE(SameApp(before, Load()));
}

TEST_F(SameAppTest, ClientIdFileSwitchedToAnotherAppIsAnotherApp) {
  AppConfig before = Load();
  // Same reference, another connected app behind it.
  WriteFile(id_path_, "exchange-reader\n");
  AppConfig after = Load();
  EXPECT_FALSE(SameApp(before, after));
  // And back again: the tokens held now are exchange-reader's.
  WriteFile(id_path_, "design-center-app");
  EXPECT_FALSE(SameApp(after, Load()));
}

TEST_F(SameAppTest, OnlyTheTrailingNewlineChangedIsTheSameApp) {
  AppConfig before = Load();
  WriteFile(id_path_, "design-center-app");  // Read as the same value.
  EXPECT_TRUE(SameApp(before, Load()));
}

TEST_F(SameAppTest, RotatedSecretIsTheSameApp) {
  // The client id names the app; a new secret of the same app leaves its
  // tokens valid (and is read at the next fetch anyway).
  AppConfig before = Load();
  WriteFile(secret_path_, "dc-secret-rotated");
  EXPECT_TRUE(SameApp(before, Load()));
}

TEST_F(SameAppTest, UnreadableClientIdIsAChange) {
  AppConfig before = Load();
  std::remove(id_path_.c_str());
  AppConfig missing = Load();  // Not a config error: fetches will say so.
  EXPECT_FALSE(SameApp(before, missing));
  EXPECT_FALSE(SameApp(missing, Load()));  // Unknown both times.
  WriteFile(id_path_, "design-center-app");
  EXPECT_FALSE(SameApp(missing, Load()));
}

TEST_F(SameAppTest, OtherFieldsStillCount) {
  AppConfig before = Load();
  WriteConfig("    org_id: org-2\n");
  EXPECT_FALSE(SameApp(before, Load()));
}

TEST_F(SameAppTest, FingerprintIsTheHashNotTheId) {
  AppConfig app = Load();
  // sha256("design-center-app"), as `printf design-center-app | sha256sum`.
  ASSERT_TRUE(app.client_id_sha256.has_value());
  EXPECT_EQ(app.client_id_sha256->size(), 64u);
  EXPECT_EQ(app.client_id_sha256->find("design-center-app"), std::string::npos);
  EXPECT_EQ(*app.client_id_sha256,
            "58b8683218c854f9c93c164c9720ed6f289d10d4ac81b6725c68b2d77940a9eb");
}

TEST(SameAppParsedTest, WithoutFingerprintsReferencesAreCompared) {
  // ParseConfig() resolves nothing: only the references can be compared.
  const std::string yaml =
      "apps:\n  - {name: a, control_plane: us, client_id: {env: ID_A},\n"
      "     client_secret: {env: SECRET_A}}\n";
  absl::StatusOr<Config> a = ParseConfig(yaml, "a.yaml");
  absl::StatusOr<Config> b = ParseConfig(yaml, "b.yaml");
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_FALSE(a->apps[0].client_id_sha256.has_value());
  EXPECT_TRUE(SameApp(a->apps[0], b->apps[0]));
  // Once one side is fingerprinted, both must be.
  FingerprintClientIds(&*b);
  ASSERT_TRUE(b->apps[0].client_id_sha256.has_value());
  EXPECT_EQ(*b->apps[0].client_id_sha256, "");  // ID_A is not set.
  EXPECT_FALSE(SameApp(a->apps[0], b->apps[0]));
}

}  // namespace
}  // namespace tokenbroker
