// headway_server: serves every model of a model store over gRPC.
#include <pthread.h>
#include <signal.h>

#include <fstream>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "model_store/model_registry.h"
#include "model_store/torch_runtime.h"
#include "server/headway_server.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on.");
ABSL_FLAG(int, port, 50051, "gRPC port; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound port is written to this file once the server serves.");
ABSL_FLAG(std::string, model_store, "models",
          "Folder with one sub-folder per model, each with a config.pbtxt.");
ABSL_FLAG(int, worker_threads, static_cast<int>(std::thread::hardware_concurrency()),
          "Threads running inference requests and head loads.");
ABSL_FLAG(int, torch_threads, 0,
          "LibTorch intra-op threads per forward pass; 0 keeps LibTorch's default, which "
          "measured best on the 2-core build machines (README, Throughput).");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC message accepted or sent.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM or SIGINT, how long requests in flight may take to finish.");

namespace {

int Fail(const absl::Status& status) {
  std::cerr << "headway_server: " << status << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves Headway models over gRPC.\n"
      "Usage: headway_server [--model_store=models] [--port=50051] [flags]");
  absl::ParseCommandLine(argc, argv);

  // Block the shutdown signals in every thread; main waits for them below.
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGINT);
  sigaddset(&shutdown_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr);

  headway::ConfigureTorchThreads(absl::GetFlag(FLAGS_torch_threads));
  const absl::Time load_start = absl::Now();
  absl::StatusOr<std::unique_ptr<headway::ModelRegistry>> registry =
      headway::ModelRegistry::Create({absl::GetFlag(FLAGS_model_store)});
  if (!registry.ok()) return Fail(registry.status());
  for (const std::shared_ptr<headway::Model>& model : (*registry)->List()) {
    const headway::ModelInfo info = model->Info();
    std::cerr << "loaded model=" << info.name << " version=" << info.version
              << " device=" << info.device << " feature_dim=" << info.feature_dim
              << " heads=" << info.heads.size() << "\n";
  }

  headway::HeadwayServer::Options options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.registry = registry->get();
  absl::StatusOr<std::unique_ptr<headway::HeadwayServer>> server =
      headway::HeadwayServer::Start(options);
  if (!server.ok()) return Fail(server.status());
  std::cerr << "serving on " << options.host << ":" << (*server)->port()
            << " (models loaded in " << absl::FormatDuration(absl::Now() - load_start)
            << ")" << std::endl;
  if (const std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    const std::string partial = port_file + ".tmp";
    std::ofstream(partial) << (*server)->port() << "\n";
    std::rename(partial.c_str(), port_file.c_str());
  }

  int signal_number = 0;
  sigwait(&shutdown_signals, &signal_number);
  std::cerr << "signal " << signal_number << ": draining for up to "
            << absl::FormatDuration(absl::GetFlag(FLAGS_shutdown_grace)) << std::endl;
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  (*server)->Wait();
  server->reset();
  std::cerr << "stopped" << std::endl;
  return 0;
}
