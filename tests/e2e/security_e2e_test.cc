// End to end, who may do what: admin authorisation (a token, or a client
// certificate's name), TLS and mutual TLS, the local socket's plaintext health check,
// and model-store paths that may not leave the model's folder. Every test runs the
// real headway_server binary on localhost ports.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/headway_client.h"
#include "client/load_generator.h"
#include "tests/support/digits_data.h"
#include "tests/support/operations.h"
#include "tests/support/served.h"
#include "tests/support/server_process.h"

namespace headway {
namespace {

using testing::CellOf;
using testing::ClassifyDigit;
using testing::Connect;
using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::ServerProcess;
using testing::WriteFile;

TEST(AdminAuthTest, ManagementNeedsTheTokenAndInferenceStaysOpen) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(testing::ModelStore());
  ASSERT_TRUE(server.ok()) << server.status();
  v1::HotSwapHeadRequest swap;
  swap.set_model("digits");
  swap.set_head("digit");
  swap.set_file("heads/parity.pt");
  swap.set_labels_file("heads/parity.labels");
  v1::LoadModelRequest load;
  load.set_model("digits");
  v1::UnloadModelRequest unload;
  unload.set_model("digits");
  v1::RemoveHeadRequest remove;
  remove.set_model("digits");
  remove.set_head("digit");

  std::unique_ptr<HeadwayClient> anonymous = Connect((*server)->target());
  std::unique_ptr<HeadwayClient> wrong = Connect((*server)->target(), "not-the-token");
  for (HeadwayClient* client : {anonymous.get(), wrong.get()}) {
    const absl::StatusCode expected = client == anonymous.get()
                                          ? absl::StatusCode::kUnauthenticated
                                          : absl::StatusCode::kPermissionDenied;
    EXPECT_EQ(client->HotSwapHead(swap).status().code(), expected);
    EXPECT_EQ(client->LoadModel(load).status().code(), expected);
    EXPECT_EQ(client->UnloadModel(unload).status().code(), expected);
    EXPECT_EQ(client->RemoveHead(remove).status().code(), expected);
    // Inference and listing stay open.
    EXPECT_TRUE(client->Classify(ClassifyDigit(4)).ok());
    EXPECT_TRUE(client->ListModels().ok());
  }
  // Nothing changed: still the 10-class head at version 1.
  const absl::StatusOr<v1::ClassifyResponse> answer =
      anonymous->Classify(ClassifyDigit(CellOf(4)));
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->head_version(), 1);
  EXPECT_EQ(answer->results(0).labels(0).label(), "4");

  std::unique_ptr<HeadwayClient> admin =
      Connect((*server)->target(), (*server)->admin_token());
  const absl::StatusOr<v1::HotSwapHeadResponse> swapped = admin->HotSwapHead(swap);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_EQ(swapped->head_version(), 2);
  EXPECT_THAT((*server)->Log(), HasSubstr("event=admin_refused"));
  EXPECT_THAT((*server)->Log(), HasSubstr("event=head_swapped model=digits head=digit"));
}

TEST(AdminAuthTest, ManagementIsOffWithoutAnAdminCredential) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(testing::ModelStore(), {"--admin_open=false"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> client = Connect((*server)->target(), "any-token");
  v1::LoadModelRequest load;
  load.set_model("digits");
  const absl::Status status = client->LoadModel(load).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("management RPCs are off"));
  EXPECT_TRUE(client->Classify(ClassifyDigit(1)).ok());
}

// A CA, a server certificate for 127.0.0.1 and two client certificates, made with
// openssl for this test run.
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(MakeTempDir());
    const std::string d = dir_->string();
    WriteFile(*dir_ / "server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string commands =
        absl::StrCat("cd ", d, " && openssl req -x509 ", key,
                     " -keyout ca.key -out ca.pem -days 2 -subj /CN=headway-test-ca");
    for (const char* name : {"server", "admin", "someone"}) {
      const std::string cn =
          std::string(name) == "server" ? "localhost" : absl::StrCat("headway-", name);
      absl::StrAppend(&commands, " && openssl req ", key, " -keyout ", name, ".key -out ",
                      name, ".csr -subj /CN=", cn, " && openssl x509 -req -in ", name,
                      ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out ", name,
                      ".pem",
                      std::string(name) == "server" ? " -extfile server.ext" : "");
    }
    std::string output;
    ASSERT_EQ(testing::RunCommand(absl::StrCat("(", commands, ") 2>&1"), &output), 0)
        << output;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  static std::string File(const std::string& name) { return (*dir_ / name).string(); }

  static TlsOptions ClientTls(const std::string& client = "") {
    TlsOptions tls;
    tls.ca_file = File("ca.pem");
    if (!client.empty()) {
      tls.cert_file = File(client + ".pem");
      tls.key_file = File(client + ".key");
    }
    return tls;
  }

  static std::filesystem::path* dir_;
};

std::filesystem::path* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, TlsServerAnswersTlsClientsOnly) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      testing::ModelStore(),
      {"--tls_cert_file=" + File("server.pem"), "--tls_key_file=" + File("server.key")});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> tls_client =
      Connect((*server)->target(), (*server)->admin_token(), ClientTls());
  const absl::StatusOr<v1::ClassifyResponse> answer =
      tls_client->Classify(ClassifyDigit(CellOf(4)));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->results(0).labels(0).label(), "4");

  std::unique_ptr<HeadwayClient> plaintext =
      Connect((*server)->target(), "", TlsOptions(), /*wait_for_ready=*/false);
  EXPECT_EQ(plaintext->Classify(ClassifyDigit(4)).status().code(),
            absl::StatusCode::kUnavailable);

  // The CLI and the load generator speak TLS too.
  std::string output;
  const std::filesystem::path png = *dir_ / "digit4.png";
  WriteFile(png, testing::EncodePng(testing::DigitCell(CellOf(4))));
  ASSERT_EQ(testing::RunCommand(
                absl::StrCat(HEADWAY_CLI_BINARY, " --target=", (*server)->target(),
                             " --tls_ca_file=", File("ca.pem"), " classify --top_k=1 ",
                             png.string(), " 2>&1"),
                &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr(": 4 ("));

  LoadOptions load = testing::DigitLoad((*server)->target(), 2, absl::Seconds(10), 7);
  load.tls = ClientTls();
  load.requests = 40;
  const absl::StatusOr<LoadReport> report = RunLoad(load);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->ok, 40);
  EXPECT_TRUE(report->errors.empty());
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificateAndItsNameCanBeTheAdminCredential) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      testing::ModelStore(),
      {"--tls_cert_file=" + File("server.pem"), "--tls_key_file=" + File("server.key"),
       "--tls_client_ca_file=" + File("ca.pem"), "--admin_client_cn=headway-admin"});
  ASSERT_TRUE(server.ok()) << server.status();

  std::unique_ptr<HeadwayClient> no_certificate =
      Connect((*server)->target(), "", ClientTls(), /*wait_for_ready=*/false);
  EXPECT_EQ(no_certificate->Classify(ClassifyDigit(4)).status().code(),
            absl::StatusCode::kUnavailable);

  v1::HotSwapHeadRequest swap;
  swap.set_model("digits");
  swap.set_head("parity");
  swap.set_file("heads/parity.pt");
  swap.set_labels_file("heads/parity.labels");

  std::unique_ptr<HeadwayClient> someone =
      Connect((*server)->target(), "", ClientTls("someone"));
  EXPECT_TRUE(someone->Classify(ClassifyDigit(4)).ok());
  const absl::Status refused = someone->HotSwapHead(swap).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("\"headway-someone\" is not an admin"));

  std::unique_ptr<HeadwayClient> admin =
      Connect((*server)->target(), "", ClientTls("admin"));
  const absl::StatusOr<v1::HotSwapHeadResponse> swapped = admin->HotSwapHead(swap);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  v1::ClassifyRequest parity = ClassifyDigit(CellOf(4));
  parity.set_head("parity");
  const absl::StatusOr<v1::ClassifyResponse> answer = someone->Classify(parity);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->results(0).labels(0).label(), "even");
}

// The container image's health check: a mutual-TLS server on its TCP port also
// answers plaintext on its local socket, where the CLI needs neither the port nor a
// certificate. A socket it cannot create is skipped with a warning.
TEST_F(TlsTest, ALocalSocketAnswersTheHealthCheckOfAMutualTlsServer) {
  const std::filesystem::path dir = MakeTempDir();
  const std::string socket = (dir / "headway.sock").string();
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      testing::ModelStore(),
      {"--tls_cert_file=" + File("server.pem"), "--tls_key_file=" + File("server.key"),
       "--tls_client_ca_file=" + File("ca.pem"), "--local_socket=" + socket});
  ASSERT_TRUE(server.ok()) << server.status();
  std::string output;
  EXPECT_EQ(testing::RunCommand(absl::StrCat(HEADWAY_CLI_BINARY, " --target=unix:",
                                             socket, " --timeout=20s health 2>&1"),
                                &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("SERVING"));
  // Plaintext TCP is still refused: only the socket skips TLS.
  EXPECT_NE(testing::RunCommand(
                absl::StrCat(HEADWAY_CLI_BINARY, " --target=", (*server)->target(),
                             " --timeout=2s health 2>&1"),
                &output),
            0);
  std::unique_ptr<HeadwayClient> local = Connect("unix:" + socket);
  const absl::StatusOr<v1::ClassifyResponse> answer =
      local->Classify(ClassifyDigit(CellOf(4)));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->results(0).labels(0).label(), "4");
  EXPECT_EQ((*server)->Stop(), 0);

  absl::StatusOr<std::unique_ptr<ServerProcess>> skipped =
      ServerProcess::Start(testing::ModelStore(),
                           {"--local_socket=" + (dir / "absent/headway.sock").string()});
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_THAT((*skipped)->Log(), HasSubstr("event=local_socket_skipped"));
  EXPECT_TRUE(Connect((*skipped)->target())->Classify(ClassifyDigit(CellOf(4))).ok());
  std::filesystem::remove_all(dir);
}

// Certificates and the admin token rotate without a restart: the server reads its
// TLS and token files again (--credentials_poll_interval) and serves a change that
// passes the checks from the next connection or call, over gRPC and HTTPS alike. A
// change that fails (a file that is not PEM, a key that does not match, an expired
// certificate, an empty token) is refused and logged, and what is served stays.
TEST(CredentialRotationTest, CertificatesAndTheAdminTokenRotateWithoutARestart) {
  const std::filesystem::path dir = MakeTempDir();
  const std::string d = dir.string();
  WriteFile(dir / "server.ext", "subjectAltName=IP:127.0.0.1\n");
  // Two CAs, each with a server certificate; the second also with an expired one.
  const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::string commands = absl::StrCat("cd ", d);
  for (const char* n : {"1", "2"}) {
    absl::StrAppend(&commands, " && openssl req -x509 ", key, " -keyout ca", n,
                    ".key -out ca", n, ".pem -days 2 -subj /CN=headway-test-ca-", n,
                    " && openssl req ", key, " -keyout server", n, ".key -out server", n,
                    ".csr -subj /CN=localhost && openssl x509 -req -in server", n,
                    ".csr -CA ca", n, ".pem -CAkey ca", n,
                    ".key -CAcreateserial -days 2 -extfile server.ext -out server", n,
                    ".pem");
  }
  absl::StrAppend(&commands,
                  " && openssl x509 -req -in server2.csr -CA ca2.pem -CAkey ca2.key "
                  "-CAcreateserial -days 0 -extfile server.ext -out expired2.pem");
  std::string output;
  ASSERT_EQ(testing::RunCommand(absl::StrCat("(", commands, ") 2>&1"), &output), 0)
      << output;
  const auto read = [&](const std::string& name) {
    std::ifstream in(dir / name);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  // Replaces a served file in one step, as a Secret volume does.
  const auto install = [&](const std::string& name, const std::string& text) {
    WriteFile(dir / (name + ".new"), text);
    std::filesystem::rename(dir / (name + ".new"), dir / name);
  };
  install("cert.pem", read("server1.pem"));
  install("key.pem", read("server1.key"));
  install("token", "first-token\n");
  const int http_port = testing::FreePort();
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      testing::ModelStore(),
      {"--tls_cert_file=" + d + "/cert.pem", "--tls_key_file=" + d + "/key.pem",
       "--admin_token_file=" + d + "/token", "--credentials_poll_interval=100ms",
       absl::StrCat("--http_port=", http_port)});
  ASSERT_TRUE(server.ok()) << server.status();

  // A new connection trusting `ca` (1 or 2) lists the models over gRPC.
  const auto grpc_trusts = [&](const std::string& ca) {
    TlsOptions tls;
    tls.ca_file = d + "/ca" + ca + ".pem";
    return Connect((*server)->target(), "", tls, /*wait_for_ready=*/false)
        ->ListModels()
        .ok();
  };
  const auto https_trusts = [&](const std::string& ca) {
    std::string body;
    testing::RunCommand(
        absl::StrCat("curl -s --max-time 10 --cacert ", d, "/ca", ca,
                     ".pem https://127.0.0.1:", http_port, "/v2/health/ready"),
        &body);
    return body == R"({"ready":true})";
  };
  // The admin check passed (the model is loaded already) or not.
  const auto admin_code = [&](const std::string& token) {
    TlsOptions tls;
    tls.ca_file = d + "/ca2.pem";
    v1::LoadModelRequest load;
    load.set_model("digits");
    return Connect((*server)->target(), token, tls, /*wait_for_ready=*/false)
        ->LoadModel(load)
        .status()
        .code();
  };
  const auto wait_for = [](const std::function<bool()>& done) {
    for (const absl::Time give_up = absl::Now() + absl::Seconds(30);
         absl::Now() < give_up; absl::SleepFor(absl::Milliseconds(100))) {
      if (done()) return true;
    }
    return false;
  };
  EXPECT_TRUE(grpc_trusts("1"));
  EXPECT_TRUE(https_trusts("1"));
  EXPECT_FALSE(grpc_trusts("2"));

  install("key.pem", read("server2.key"));
  install("cert.pem", read("server2.pem"));
  install("token", "second-token\n");
  ASSERT_TRUE(wait_for([&] { return grpc_trusts("2"); })) << (*server)->Log();
  EXPECT_TRUE(wait_for([&] { return https_trusts("2"); }));
  EXPECT_FALSE(grpc_trusts("1"));
  EXPECT_FALSE(https_trusts("1"));
  EXPECT_EQ(admin_code("second-token"), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(admin_code("first-token"), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT((*server)->Log(), HasSubstr("event=credentials_reloaded credential=tls"));
  EXPECT_THAT((*server)->Log(),
              HasSubstr("event=credentials_reloaded credential=admin_token"));
  EXPECT_THAT((*server)->Log(), ::testing::Not(HasSubstr("second-token")));

  // Bad changes are refused, each logged, and the second set keeps serving.
  const std::string refused = "event=credentials_refused credential=tls error=";
  const std::vector<std::pair<std::string, std::string>> bad_changes = {
      {"not PEM", "holds no PEM certificate"},
      {"server1.pem", "does not match the certificate"},
      {"expired2.pem", "expired at"}};
  for (const auto& [cert, error] : bad_changes) {
    // Each refusal is logged anew (a transient one during the rotation may be there).
    const auto refusals = [&, error = error] {
      const std::string log = (*server)->Log();
      int found = 0;
      for (size_t at = log.find(error); at != std::string::npos;
           at = log.find(error, at + 1)) {
        ++found;
      }
      return found;
    };
    const int before = refusals();
    install("cert.pem", cert == "not PEM" ? "not a certificate\n" : read(cert));
    EXPECT_TRUE(wait_for([&] { return refusals() > before; })) << error;
    EXPECT_TRUE(grpc_trusts("2")) << error;
    EXPECT_TRUE(https_trusts("2")) << error;
  }
  EXPECT_THAT((*server)->Log(), HasSubstr(refused));
  install("token", "");
  EXPECT_TRUE(wait_for([&] {
    return absl::StrContains((*server)->Log(),
                             "admin token file " + d + "/token is empty");
  }));
  EXPECT_EQ(admin_code("second-token"), absl::StatusCode::kAlreadyExists);

  const absl::StatusOr<std::string> metrics =
      testing::HttpGet((*server)->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics, HasSubstr(R"(headway_credential_reloads_total{credential="tls",)"
                                  R"(result="reloaded"} 1)"));
  EXPECT_THAT(*metrics, HasSubstr(R"(headway_credential_reloads_total{)"
                                  R"(credential="admin_token",result="refused"} 1)"));
  EXPECT_THAT(*metrics, HasSubstr("headway_tls_certificate_expiry_timestamp_seconds "));
  std::filesystem::remove_all(dir);
}

TEST(PathSafetyTest, SymbolicLinksOutOfTheModelFolderAreRefused) {
  const std::filesystem::path store = testing::CopyModelStore();
  const std::filesystem::path outside = MakeTempDir();
  std::filesystem::copy_file(store / "digits" / "heads" / "parity.pt",
                             outside / "parity.pt");
  std::filesystem::copy_file(store / "digits" / "heads" / "parity.labels",
                             outside / "parity.labels");
  const std::filesystem::path heads = store / "digits" / "heads";
  std::filesystem::create_symlink(outside / "parity.pt", heads / "escape.pt");
  std::filesystem::create_symlink(outside / "parity.labels", heads / "escape.labels");
  std::filesystem::create_symlink(outside, heads / "elsewhere");
  // A link that stays inside the folder is fine.
  std::filesystem::create_symlink("parity.pt", heads / "inside.pt");

  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(store);
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> admin =
      Connect((*server)->target(), (*server)->admin_token());
  auto swap = [&](const std::string& file, const std::string& labels_file) {
    v1::HotSwapHeadRequest request;
    request.set_model("digits");
    request.set_head("parity");
    request.set_file(file);
    request.set_labels_file(labels_file);
    return admin->HotSwapHead(request).status();
  };
  EXPECT_EQ(swap("heads/escape.pt", "heads/parity.labels").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(swap("heads/parity.pt", "heads/escape.labels").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(swap("heads/elsewhere/parity.pt", "").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(swap("heads/escape.pt", "").message(),
              HasSubstr("leads outside the model's folder"));
  EXPECT_EQ(swap((outside / "parity.pt").string(), "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(swap("../digits/heads/parity.pt", "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(swap("heads/inside.pt", "heads/parity.labels").ok());
  v1::LoadModelRequest load;
  load.set_model("../digits");
  EXPECT_EQ(admin->LoadModel(load).status().code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(store);
  std::filesystem::remove_all(outside);
}

}  // namespace
}  // namespace headway
