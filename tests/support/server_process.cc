#include "tests/support/server_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace headway::testing {

pid_t Spawn(std::vector<std::string> args, const std::filesystem::path& log_file) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* log = std::fopen(log_file.c_str(), "w");
    if (log != nullptr) {
      dup2(fileno(log), STDOUT_FILENO);
      dup2(fileno(log), STDERR_FILENO);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::filesystem::path& model_store,
    const std::vector<std::string>& extra_flags) {
  return Launch(model_store, extra_flags, /*unprivileged=*/false);
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::StartUnprivileged(
    const std::filesystem::path& model_store,
    const std::vector<std::string>& extra_flags) {
  return Launch(model_store, extra_flags, /*unprivileged=*/geteuid() == 0);
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Launch(
    const std::filesystem::path& model_store, const std::vector<std::string>& extra_flags,
    bool unprivileged) {
  std::unique_ptr<ServerProcess> server(new ServerProcess());
  char work_template[] = "/tmp/headway-test-XXXXXX";
  if (mkdtemp(work_template) == nullptr) return absl::InternalError("mkdtemp failed");
  server->work_dir_ = work_template;
  // The server writes its port files here.
  if (unprivileged) chmod(work_template, 0777);
  const std::filesystem::path port_file = server->work_dir_ / "port";
  const std::filesystem::path metrics_port_file = server->work_dir_ / "metrics_port";
  const std::filesystem::path log_file = server->work_dir_ / "server.log";

  std::vector<std::string> args = {HEADWAY_SERVER_BINARY,
                                   "--host=127.0.0.1",
                                   "--port=0",
                                   "--port_file=" + port_file.string(),
                                   "--metrics_address=127.0.0.1:0",
                                   "--metrics_port_file=" + metrics_port_file.string(),
                                   "--model_store=" + model_store.string()};
  const bool sets_admin = std::any_of(
      extra_flags.begin(), extra_flags.end(),
      [](const std::string& flag) { return absl::StartsWith(flag, "--admin"); });
  if (!sets_admin) {
    server->admin_token_ = absl::StrCat("test-admin-token-", getpid(), "-", rand());
    const std::filesystem::path token_file = server->work_dir_ / "admin_token";
    std::ofstream(token_file) << server->admin_token_ << "\n";
    args.push_back("--admin_token_file=" + token_file.string());
  }
  // HTTP is off unless a test asks for it (its default port would be shared).
  if (std::none_of(extra_flags.begin(), extra_flags.end(), [](const std::string& flag) {
        return absl::StartsWith(flag, "--http_port=");
      })) {
    args.push_back("--http_port=0");
  }
  args.insert(args.end(), extra_flags.begin(), extra_flags.end());
  if (unprivileged) {
    args.insert(args.begin(), {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                               "--clear-groups", "--"});
  }
  server->pid_ = Spawn(args, log_file);
  if (server->pid_ < 0) return absl::InternalError("fork failed");

  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline) {
    if (absl::StrContains(server->Log(), "event=serving")) {
      std::ifstream(port_file) >> server->port_;
      std::ifstream(metrics_port_file) >> server->metrics_port_;
      return server;
    }
    int status = 0;
    if (waitpid(server->pid_, &status, WNOHANG) == server->pid_) {
      server->pid_ = -1;
      return absl::InternalError(
          absl::StrCat("headway_server exited at start: ", server->Log()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError("headway_server did not start serving in time");
}

ServerProcess::~ServerProcess() {
  Stop();
  // A sanitizer report in the server (scripts/sanitize.sh) would go with its folder.
  const std::string log = Log();
  if (absl::StrContains(log, "Sanitizer:")) std::cerr << "server log:\n" << log;
  std::error_code ignored;
  std::filesystem::remove_all(work_dir_, ignored);
}

std::string ServerProcess::Log() const {
  std::ifstream log(work_dir_ / "server.log");
  return std::string((std::istreambuf_iterator<char>(log)),
                     std::istreambuf_iterator<char>());
}

void ServerProcess::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

std::string ServerProcess::target() const { return absl::StrCat("127.0.0.1:", port_); }

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int ConnectTcp(int port, absl::Duration read_timeout) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const timeval wait = absl::ToTimeval(read_timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

absl::StatusOr<HttpReply> HttpExchange(int port, const std::string& request,
                                       absl::Duration timeout) {
  const int fd = ConnectTcp(port, timeout);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot connect to 127.0.0.1:", port));
  }
  // A server may answer (and close) before the whole request is sent.
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[8192];
  ssize_t received = 0;
  while ((received = recv(fd, buffer, sizeof(buffer), 0)) > 0) {
    response.append(buffer, static_cast<size_t>(received));
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (!absl::StartsWith(response, "HTTP/1.") || body == std::string::npos) {
    return absl::UnavailableError(absl::StrCat("no HTTP response from port ", port));
  }
  HttpReply reply;
  const std::string status_line = response.substr(0, response.find("\r\n"));
  std::vector<std::string> parts = absl::StrSplit(status_line, absl::MaxSplits(' ', 2));
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[1], &reply.status)) {
    return absl::UnavailableError(absl::StrCat("bad status line: ", status_line));
  }
  reply.headers = response.substr(0, body);
  reply.body = response.substr(body + 4);
  return reply;
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  absl::StatusOr<HttpReply> reply = HttpExchange(
      port, absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
      absl::Seconds(10));
  if (!reply.ok()) return reply.status();
  if (reply->status != 200) {
    return absl::UnavailableError(absl::StrCat(
        "GET ", path, ": ", reply->headers.substr(0, reply->headers.find("\r\n"))));
  }
  return reply->body;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t read = 0;
  while ((read = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0)
    output->append(buffer, read);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace headway::testing
