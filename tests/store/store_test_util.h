#ifndef TOKENBROKER_TESTS_STORE_STORE_TEST_UTIL_H_
#define TOKENBROKER_TESTS_STORE_STORE_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "service/store/grant_store.h"
#include "service/store/sealed_box.h"

namespace tokenbroker::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its content when
// the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A key of 32 random bytes.
SealKey RandomSealKey(const std::string& id);

// KeyRing::Create() that must succeed.
std::shared_ptr<const KeyRing> MakeKeyRing(std::vector<SealKey> keys);

// A complete grant whose refresh token is distinctive enough to be searched
// for in messages: "rt-SECRET-<app>-<user_id>-Zq9".
UserGrant SampleGrant(const std::string& app, const std::string& user_id);

// The whole content of a file ("" if it cannot be read), and writing one.
std::string ReadWholeFile(const std::string& path);
void WriteWholeFile(const std::string& path, const std::string& content);

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_STORE_STORE_TEST_UTIL_H_
