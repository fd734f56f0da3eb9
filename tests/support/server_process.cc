#include "tests/support/server_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace headway::testing {

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::filesystem::path& model_store,
    const std::vector<std::string>& extra_flags) {
  std::unique_ptr<ServerProcess> server(new ServerProcess());
  char work_template[] = "/tmp/headway-test-XXXXXX";
  if (mkdtemp(work_template) == nullptr) return absl::InternalError("mkdtemp failed");
  server->work_dir_ = work_template;
  const std::filesystem::path port_file = server->work_dir_ / "port";
  const std::filesystem::path log_file = server->work_dir_ / "server.log";

  std::vector<std::string> args = {HEADWAY_SERVER_BINARY, "--host=127.0.0.1", "--port=0",
                                   "--port_file=" + port_file.string(),
                                   "--model_store=" + model_store.string()};
  args.insert(args.end(), extra_flags.begin(), extra_flags.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  server->pid_ = fork();
  if (server->pid_ < 0) return absl::InternalError("fork failed");
  if (server->pid_ == 0) {
    FILE* log = std::fopen(log_file.c_str(), "w");
    if (log != nullptr) {
      dup2(fileno(log), STDOUT_FILENO);
      dup2(fileno(log), STDERR_FILENO);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }

  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline) {
    std::ifstream in(port_file);
    if (in >> server->port_ && server->port_ > 0) return server;
    int status = 0;
    if (waitpid(server->pid_, &status, WNOHANG) == server->pid_) {
      server->pid_ = -1;
      std::ifstream log(log_file);
      std::string text((std::istreambuf_iterator<char>(log)),
                       std::istreambuf_iterator<char>());
      return absl::InternalError(absl::StrCat("headway_server exited at start: ", text));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError("headway_server did not start serving in time");
}

ServerProcess::~ServerProcess() {
  Stop();
  std::error_code ignored;
  std::filesystem::remove_all(work_dir_, ignored);
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
