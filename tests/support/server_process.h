// ServerProcess: the real headway_server binary, started on a free localhost port for
// end-to-end tests, stopped with SIGTERM when the object goes away.
#ifndef HEADWAY_TESTS_SUPPORT_SERVER_PROCESS_H_
#define HEADWAY_TESTS_SUPPORT_SERVER_PROCESS_H_

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace headway::testing {

class ServerProcess {
 public:
  // Starts headway_server with --host=127.0.0.1 --port=0 and `extra_flags`, and waits
  // until it serves (it writes its port to a file once it does).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::filesystem::path& model_store,
      const std::vector<std::string>& extra_flags = {});
  ~ServerProcess();

  std::string target() const;
  int port() const { return port_; }

  // Sends SIGTERM and returns the exit status (-1 when it did not exit normally).
  int Stop();

 private:
  ServerProcess() = default;

  pid_t pid_ = -1;
  int port_ = 0;
  std::filesystem::path work_dir_;
};

// Runs a command line, returns its exit status and captures its stdout.
int RunCommand(const std::string& command, std::string* output);

}  // namespace headway::testing

#endif  // HEADWAY_TESTS_SUPPORT_SERVER_PROCESS_H_
