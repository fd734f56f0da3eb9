// ServerProcess: the real headway_server binary, started on a free localhost port (and
// a free metrics port) for end-to-end tests, stopped with SIGTERM when the object goes
// away. Unless `extra_flags` set an --admin flag, the server gets an admin token file
// (see admin_token()), so tests can call the management RPCs as an admin would.
#ifndef HEADWAY_TESTS_SUPPORT_SERVER_PROCESS_H_
#define HEADWAY_TESTS_SUPPORT_SERVER_PROCESS_H_

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace headway::testing {

class ServerProcess {
 public:
  // Starts headway_server with --host=127.0.0.1 --port=0 and `extra_flags`, and waits
  // until it has loaded every model (its log says event=serving).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::filesystem::path& model_store,
      const std::vector<std::string>& extra_flags = {});

  // Start, with the server running as user and group `nobody` when the test runs as
  // root (a store owned by root is then one the server cannot write, as a store owned
  // by another user is in a deployment). Without root it runs as the caller.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> StartUnprivileged(
      const std::filesystem::path& model_store,
      const std::vector<std::string>& extra_flags = {});
  ~ServerProcess();

  std::string target() const;
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  const std::string& admin_token() const { return admin_token_; }
  pid_t pid() const { return pid_; }
  // Everything the server has logged so far.
  std::string Log() const;

  // Sends SIGTERM and returns the exit status (-1 when it did not exit normally).
  int Stop();

  // Sends `signal` without waiting.
  void Signal(int signal);

 private:
  ServerProcess() = default;
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Launch(
      const std::filesystem::path& model_store,
      const std::vector<std::string>& extra_flags, bool unprivileged);

  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
  std::string admin_token_;
  std::filesystem::path work_dir_;
};

// An HTTP/1.0 GET of `path` from 127.0.0.1:`port`: the response body, or an error
// naming the status line.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

struct HttpReply {
  int status = 0;
  std::string headers;  // the status line and headers
  std::string body;
};

// A TCP connection to 127.0.0.1:`port` whose reads wait at most `read_timeout`: its
// file descriptor (the caller closes it), or -1 when it cannot connect.
int ConnectTcp(int port, absl::Duration read_timeout);

// Sends `request` (raw bytes) to 127.0.0.1:`port` and reads the reply until the server
// closes the connection, each read waiting at most `timeout`.
absl::StatusOr<HttpReply> HttpExchange(int port, const std::string& request,
                                       absl::Duration timeout);

// A port free on 127.0.0.1 now (bound to 0 and released).
int FreePort();

// Starts args[0] (a path) with `args`, stdout and stderr going to `log_file`; returns
// its pid, or -1 when fork fails.
pid_t Spawn(std::vector<std::string> args, const std::filesystem::path& log_file);

// Runs a command line, returns its exit status and captures its stdout.
int RunCommand(const std::string& command, std::string* output);

}  // namespace headway::testing

#endif  // HEADWAY_TESTS_SUPPORT_SERVER_PROCESS_H_
