#include "bench/bench_support.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace headway::bench {

std::string CpuLine() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model, flags;
  while (std::getline(cpuinfo, line)) {
    if (model.empty() && line.rfind("model name", 0) == 0)
      model = line.substr(line.find(':') + 2);
    if (flags.empty() && line.rfind("flags", 0) == 0)
      flags = line.substr(line.find(':') + 2);
  }
  std::vector<std::string> wanted;
  for (absl::string_view flag : absl::StrSplit(flags, ' ')) {
    if (absl::StartsWith(flag, "avx") || flag == "fma" || flag == "amx_bf16") {
      wanted.emplace_back(flag);
    }
  }
  return absl::StrCat(model, " x", std::thread::hardware_concurrency(), " (",
                      absl::StrJoin(wanted, " "), ")");
}

ServerRun StartServer(const std::string& server_binary,
                      const std::filesystem::path& store,
                      const std::filesystem::path& work,
                      const std::vector<std::string>& flags) {
  const std::filesystem::path port_file = work / "port";
  std::filesystem::remove(port_file);
  std::vector<std::string> args = {
      server_binary,        "--host=127.0.0.1",
      "--port=0",           "--port_file=" + port_file.string(),
      "--metrics_address=", "--http_port=0",
      "--admin_open",       "--model_store=" + store.string()};
  args.insert(args.end(), flags.begin(), flags.end());
  ServerRun run;
  run.pid = fork();
  if (run.pid == 0) {
    const std::string log = (work / "server.log").string();
    if (freopen(log.c_str(), "w", stderr) == nullptr) _exit(126);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  for (int i = 0; i < 600 && !std::filesystem::exists(port_file); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::string port;
  std::ifstream(port_file) >> port;
  run.target = absl::StrCat("127.0.0.1:", port);
  return run;
}

void StopServer(const ServerRun& server) {
  if (server.pid <= 0) return;
  kill(server.pid, SIGTERM);
  int status = 0;
  waitpid(server.pid, &status, 0);
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

}  // namespace headway::bench
