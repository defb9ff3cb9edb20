#include "server/auth.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "ledger/sha256.h"

namespace warmledger::server {
namespace {

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::path(::testing::TempDir()) /
             ("auth-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void Write(const std::string& text) { std::ofstream(path_) << text; }
  std::string path_;
};

TEST_F(AuthTest, KnownTokensMapToTheirRoles) {
  Write("# tokens\n" + HashToHex(Sha256("wl_admin")) + " admin root\n" +
        HashToHex(Sha256("wl_clerk")) + " clerk alice\n" + HashToHex(Sha256("wl_mall")) +
        " mall shop\n" + HashToHex(Sha256("wl_aud")) + " auditor bob\n");
  auto auth = Authenticator::FromFile(path_);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(*auth->Authenticate("Bearer wl_admin"), Role::kAdmin);
  EXPECT_EQ(*auth->Authenticate("Bearer wl_clerk"), Role::kClerk);
  EXPECT_EQ(*auth->Authenticate("Bearer wl_mall"), Role::kMall);
  EXPECT_EQ(*auth->Authenticate("Bearer wl_aud"), Role::kAuditor);
  EXPECT_EQ(*auth->Authenticate(""), Role::kNone);
}

TEST_F(AuthTest, UnknownOrMalformedTokenIsUnauthenticated) {
  Write(HashToHex(Sha256("wl_clerk")) + " clerk alice\n");
  auto auth = Authenticator::FromFile(path_);
  ASSERT_TRUE(auth.ok());
  for (const char* h : {"Bearer wl_other", "Bearer ", "Basic abc", "wl_clerk"}) {
    EXPECT_EQ(auth->Authenticate(h).status().code(), absl::StatusCode::kUnauthenticated) << h;
  }
}

TEST_F(AuthTest, RolesAreCheckedPerAccessLevel) {
  Write(HashToHex(Sha256("wl_clerk")) + " clerk alice\n" + HashToHex(Sha256("wl_aud")) +
        " auditor bob\n" + HashToHex(Sha256("wl_mall")) + " mall shop\n");
  auto auth = Authenticator::FromFile(path_);
  ASSERT_TRUE(auth.ok());
  EXPECT_TRUE(auth->Authorize("Bearer wl_clerk", Access::kWrite).ok());
  EXPECT_EQ(auth->Authorize("Bearer wl_aud", Access::kWrite).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(auth->Authorize("Bearer wl_clerk", Access::kExport).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(auth->Authorize("Bearer wl_aud", Access::kExport).ok());
  EXPECT_EQ(auth->Authorize("Bearer wl_mall", Access::kRead).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(auth->Authorize("", Access::kPublic).ok());
  EXPECT_EQ(auth->Authorize("", Access::kRead).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth->Authorize("Bearer wl_clerk", Access::kAdmin).status().code(),
            absl::StatusCode::kPermissionDenied);
  // The checkout writes are the mall's (and admin's); its reads also the
  // office's and the auditor's.
  EXPECT_TRUE(auth->Authorize("Bearer wl_mall", Access::kCheckout).ok());
  EXPECT_EQ(auth->Authorize("Bearer wl_clerk", Access::kCheckout).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(auth->Authorize("Bearer wl_aud", Access::kCheckout).status().code(),
            absl::StatusCode::kPermissionDenied);
  for (const char* token : {"Bearer wl_mall", "Bearer wl_clerk", "Bearer wl_aud"}) {
    EXPECT_TRUE(auth->Authorize(token, Access::kCheckoutRead).ok()) << token;
  }
  EXPECT_EQ(auth->Authorize("", Access::kCheckoutRead).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(AuthTest, MalformedLinesAreRejectedNamingTheLine) {
  Write(HashToHex(Sha256("x")) + " clerk a\nnot-a-hash clerk b\n");
  auto auth = Authenticator::FromFile(path_);
  EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(auth.status().message().find(":2:"), absl::string_view::npos);
  Write(HashToHex(Sha256("x")) + " superuser a\n");
  EXPECT_EQ(Authenticator::FromFile(path_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AuthDevTest, DevModeMakesEveryCallerAdmin) {
  Authenticator dev = Authenticator::Dev();
  EXPECT_EQ(*dev.Authenticate(""), Role::kAdmin);
  EXPECT_TRUE(dev.Authorize("", Access::kAdmin).ok());
}

}  // namespace
}  // namespace warmledger::server
