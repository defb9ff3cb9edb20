// Temporary folders for tests: one fresh, empty folder per test under
// GoogleTest's temporary folder, removed with everything in it afterwards.
#ifndef WARMLEDGER_LEDGER_TEMP_DIR_TESTING_H_
#define WARMLEDGER_LEDGER_TEMP_DIR_TESTING_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "gtest/gtest.h"

namespace warmledger {

// A new empty folder `name`.XXXXXX under the test's temporary folder;
// empty (and a test failure) if it cannot be made. The caller removes it.
inline std::string MakeTempDir(std::string_view name) {
  std::string pattern = ::testing::TempDir();
  if (pattern.empty() || pattern.back() != '/') pattern += '/';
  pattern.append(name);
  pattern += ".XXXXXX";
  std::string path = pattern;
  if (mkdtemp(path.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << " failed";
    return "";
  }
  return path;
}

// MakeTempDir's folder, removed with its contents when the object goes.
class TempDir {
 public:
  explicit TempDir(std::string_view name = "warmledger") : path_(MakeTempDir(name)) {}
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ignored;  // best effort: a leftover temp folder fails nothing
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` inside the folder.
  std::string Sub(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_TEMP_DIR_TESTING_H_
