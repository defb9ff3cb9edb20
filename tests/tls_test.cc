// TLS and mutual TLS over real gRPC on 127.0.0.1:0, with certificates made
// for the test by the openssl command.
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "server/server.h"
#include "warmledger/v1/ledger.grpc.pb.h"

namespace warmledger::server {
namespace {

namespace pb = ::warmledger::v1;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "warmledger-tls-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    // A CA, a server certificate for 127.0.0.1 signed by it, and a client
    // certificate signed by it. EC keys keep this fast.
    const std::string d = dir_;
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    ASSERT_EQ(Run("openssl req -x509 " + ec + " -keyout " + d + "/ca.key -out " + d +
                  "/ca.pem -subj /CN=warmledger-test-ca -days 2"),
              0);
    for (const char* who : {"server", "client"}) {
      std::string w = d + "/" + who;
      ASSERT_EQ(Run("openssl req " + ec + " -keyout " + w + ".key -out " + w +
                    ".csr -subj /CN=" + who),
                0);
      std::ofstream(w + ".ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
      ASSERT_EQ(Run("openssl x509 -req -in " + w + ".csr -CA " + d + "/ca.pem -CAkey " + d +
                    "/ca.key -CAcreateserial -out " + w + ".pem -days 2 -extfile " + w +
                    ".ext"),
                0);
    }
  }
  void TearDown() override {
    server_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  static int Run(const std::string& command) {
    return std::system((command + " >/dev/null 2>&1").c_str());
  }

  void Start(bool mutual) {
    ServerOptions o;
    o.data_dir = dir_ + "/data";
    o.listen = "127.0.0.1:0";
    o.dev = true;
    o.tls_cert = dir_ + "/server.pem";
    o.tls_key = dir_ + "/server.key";
    if (mutual) o.tls_client_ca = dir_ + "/ca.pem";
    o.log = [](std::string_view) {};
    auto server = Server::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  grpc::Status GetHead(std::shared_ptr<grpc::ChannelCredentials> creds) {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), creds);
    auto stub = pb::Ledger::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    pb::GetHeadRequest req;
    pb::Head head;
    return stub->GetHead(&ctx, req, &head);
  }

  grpc::SslCredentialsOptions Ssl(bool with_client_cert) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = Slurp(dir_ + "/ca.pem");
    if (with_client_cert) {
      ssl.pem_private_key = Slurp(dir_ + "/client.key");
      ssl.pem_cert_chain = Slurp(dir_ + "/client.pem");
    }
    return ssl;
  }

  std::string dir_;
  std::unique_ptr<Server> server_;
};

TEST_F(TlsTest, ClientTrustingTheCaIsServedOverTls) {
  Start(/*mutual=*/false);
  EXPECT_TRUE(GetHead(grpc::SslCredentials(Ssl(false))).ok());
}

TEST_F(TlsTest, PlaintextClientIsRefusedByATlsServer) {
  Start(/*mutual=*/false);
  EXPECT_FALSE(GetHead(grpc::InsecureChannelCredentials()).ok());
}

TEST_F(TlsTest, ClientNotTrustingTheServerCertificateFails) {
  Start(/*mutual=*/false);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = Slurp(dir_ + "/client.pem");  // not the CA
  EXPECT_FALSE(GetHead(grpc::SslCredentials(ssl)).ok());
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificateSignedByTheCa) {
  Start(/*mutual=*/true);
  EXPECT_FALSE(GetHead(grpc::SslCredentials(Ssl(false))).ok());
  EXPECT_TRUE(GetHead(grpc::SslCredentials(Ssl(true))).ok());
}

TEST_F(TlsTest, HalfATlsConfigurationIsRefusedAtStart) {
  ServerOptions o;
  o.data_dir = dir_ + "/data";
  o.listen = "127.0.0.1:0";
  o.dev = true;
  o.tls_cert = dir_ + "/server.pem";
  EXPECT_EQ(Server::Start(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace warmledger::server
