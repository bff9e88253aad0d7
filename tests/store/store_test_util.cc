#include "tests/store/store_test_util.h"

#include <openssl/rand.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tokenbroker::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(
      base != nullptr && *base != '\0' ? base : "/tmp", "/tb-store-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed for " << pattern;
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

SealKey RandomSealKey(const std::string& id) {
  std::string bytes(kSealKeyBytes, '\0');
  EXPECT_EQ(RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()),
                       static_cast<int>(bytes.size())),
            1);
  return SealKey(id, bytes);
}

std::shared_ptr<const KeyRing> MakeKeyRing(std::vector<SealKey> keys) {
  absl::StatusOr<std::shared_ptr<const KeyRing>> ring =
      KeyRing::Create(std::move(keys));
  EXPECT_TRUE(ring.ok()) << ring.status();
  return ring.ok() ? *ring : nullptr;
}

UserGrant SampleGrant(const std::string& app, const std::string& user_id) {
  UserGrant grant;
  grant.app = app;
  grant.user_id = user_id;
  grant.username = absl::StrCat("name-of-", user_id);
  grant.refresh_token = absl::StrCat("rt-SECRET-", app, "-", user_id, "-Zq9");
  grant.scopes = {"offline_access", "view:environment"};
  grant.connected_at = absl::FromUnixNanos(1700000000123456789);
  grant.updated_at = absl::FromUnixMicros(1700000100654321);
  grant.version = 3;
  return grant;
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void WriteWholeFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

}  // namespace tokenbroker::testing
