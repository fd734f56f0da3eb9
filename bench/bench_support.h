// What Headway's benchmark programs share: the machine's description printed above
// their figures, and a real headway_server started for them on 127.0.0.1.
#ifndef HEADWAY_BENCH_BENCH_SUPPORT_H_
#define HEADWAY_BENCH_BENCH_SUPPORT_H_

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace headway::bench {

// "<CPU model> xN (avx2 fma ...)": the CPU model, usable CPUs and its vector flags.
std::string CpuLine();

struct ServerRun {
  pid_t pid = -1;
  std::string target;  // "127.0.0.1:PORT" (gRPC)
};

// Starts `server_binary` on 127.0.0.1 with a free gRPC port, metrics and HTTP off
// unless `flags` set them, the admin RPCs open, over `store`; its log goes to
// work/server.log. Returns once the port is bound (the models may still load).
ServerRun StartServer(const std::string& server_binary,
                      const std::filesystem::path& store,
                      const std::filesystem::path& work,
                      const std::vector<std::string>& flags);

// Sends SIGTERM and waits for the server to exit.
void StopServer(const ServerRun& server);

// A TCP port free on 127.0.0.1 now.
int FreePort();

}  // namespace headway::bench

#endif  // HEADWAY_BENCH_BENCH_SUPPORT_H_
