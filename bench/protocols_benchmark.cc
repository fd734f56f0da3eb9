// headway_bench_protocols: one model served by one real headway_server, classified
// through every protocol at the same concurrency, in one run: headway.v1 gRPC (float32
// tensors and JPEG bytes), the Open Inference Protocol over gRPC (raw FP32 and raw
// BYTES JPEG, top 5 by the classification extension), and HTTP (the Open Inference
// Protocol's REST form with the tensor as JSON numbers or in binary after the JSON,
// and base64 JPEG in it and in headway.v1 as JSON). Each protocol
// asks for the same answer (the top 5 labels). Rounds are interleaved so that the
// machine's drift falls on every protocol alike; each figure is the median of its
// rounds. Prints a markdown table with each protocol's throughput as a ratio to
// headway.v1 gRPC with the same input.
//
// Usage: headway_bench_protocols [--model_store=DIR --model=NAME --images=a.jpg,...]
// Without --model_store, it writes the benchmark's models (bench/make_bench_models.py:
// ResNet-18, 224x224) into a temporary folder.
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "bench/bench_support.h"
#include "client/headway_client.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "version/build_type_defaults.h"
#include "version/version.h"

ABSL_FLAG(std::string, server, HEADWAY_SERVER_BINARY, "The headway_server binary.");
ABSL_FLAG(std::string, model_store, "",
          "Model store; empty writes the benchmark's (make_bench_models.py) to a "
          "temporary folder.");
ABSL_FLAG(std::string, model, "resnet18_batched", "The model to classify with.");
ABSL_FLAG(std::vector<std::string>, images, {},
          "JPEG files; empty: the ones make_bench_models.py writes.");
ABSL_FLAG(int, concurrency, 8, "Closed-loop callers per protocol.");
ABSL_FLAG(absl::Duration, seconds, absl::Seconds(6), "Measured time per protocol run.");
ABSL_FLAG(int, rounds, 3, "Interleaved rounds; each figure is the median.");
ABSL_FLAG(std::vector<std::string>, server_flags, {}, "Extra headway_server flags.");

namespace headway {
namespace {

// One call of a protocol; true when it succeeded. Each caller thread has its own.
using Caller = std::function<bool()>;
using CallerFactory = std::function<Caller()>;

struct Protocol {
  std::string name;
  std::string baseline;  // the headway.v1 gRPC protocol it is compared with
  CallerFactory make_caller;
};

struct Figures {
  double throughput = 0;  // successful calls per second
  double p50_ms = 0;
  double p99_ms = 0;
  int64_t errors = 0;
};

Figures Run(const Protocol& protocol, int concurrency, absl::Duration duration) {
  std::vector<std::vector<double>> latencies(concurrency);
  std::atomic<int64_t> errors{0};
  const absl::Time warm_until = absl::Now() + absl::Seconds(1);
  const absl::Time end = warm_until + duration;
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      Caller call = protocol.make_caller();
      while (true) {
        const absl::Time start = absl::Now();
        if (start >= end) break;
        const bool ok = call();
        if (start < warm_until) continue;
        if (ok) {
          latencies[t].push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
        } else {
          ++errors;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<double> all;
  for (const auto& some : latencies) all.insert(all.end(), some.begin(), some.end());
  std::sort(all.begin(), all.end());
  Figures figures;
  figures.errors = errors;
  figures.throughput = all.size() / absl::ToDoubleSeconds(duration);
  if (!all.empty()) {
    figures.p50_ms = all[all.size() / 2];
    figures.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return figures;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

// POSTs `body` to 127.0.0.1:`port` (one connection per request, as the server closes
// each), with `json_length` as Inference-Header-Content-Length when binary data
// follows the JSON; true for a 200.
bool HttpPost(int port, const std::string& path, const std::string& body,
              size_t json_length = 0) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return false;
  }
  const std::string request = absl::StrCat(
      "POST ", path,
      " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
      "Content-Type: application/json\r\n",
      json_length > 0
          ? absl::StrCat("Inference-Header-Content-Length: ", json_length, "\r\n")
          : "",
      "Content-Length: ", body.size(), "\r\n\r\n", body);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += n;
  }
  std::string response;
  char buffer[16384];
  ssize_t received = 0;
  while ((received = recv(fd, buffer, sizeof(buffer), 0)) > 0)
    response.append(buffer, received);
  close(fd);
  return response.rfind("HTTP/1.1 200", 0) == 0;
}

std::vector<Protocol> Protocols(const std::string& target, int http_port,
                                const std::string& model,
                                const std::vector<std::string>& jpegs) {
  // A tensor of the model's input shape, from its metadata.
  HeadwayClient::Options options;
  options.target = target;
  options.timeout = absl::Seconds(600);
  auto client = HeadwayClient::Create(options);
  auto metadata = (*client)->GetModelMetadata(model);
  if (!metadata.ok()) {
    std::cerr << "headway_bench_protocols: " << metadata.status() << "\n";
    std::exit(1);
  }
  const v1::InputSpec& spec = metadata->input();
  const std::vector<int64_t> shape = {spec.channels(), spec.height(), spec.width()};
  std::vector<float> values(spec.channels() * spec.height() * spec.width());
  std::mt19937 random(7);
  std::normal_distribution<float> normal;
  for (float& value : values) value = normal(random);
  const std::string tensor_bytes(reinterpret_cast<const char*>(values.data()),
                                 values.size() * sizeof(float));

  auto channel = [target](int index) {
    grpc::ChannelArguments arguments;
    arguments.SetInt("headway.bench.caller", index);  // a connection per caller
    arguments.SetMaxReceiveMessageSize(64 << 20);
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                     arguments);
  };
  auto next_index = std::make_shared<std::atomic<int>>(0);
  auto deadline = [] {
    return std::chrono::system_clock::now() + std::chrono::seconds(60);
  };

  v1::ClassifyRequest v1_tensor;
  v1_tensor.set_model(model);
  v1::Tensor& tensor = *v1_tensor.add_inputs()->mutable_tensor();
  tensor.set_dtype(v1::FLOAT32);
  for (int64_t d : shape) tensor.add_shape(d);
  tensor.set_data(tensor_bytes);

  inference::ModelInferRequest v2_tensor;
  v2_tensor.set_model_name(model);
  auto& v2_input = *v2_tensor.add_inputs();
  v2_input.set_name("input");
  v2_input.set_datatype("FP32");
  v2_input.add_shape(1);
  for (int64_t d : shape) v2_input.add_shape(d);
  v2_tensor.add_raw_input_contents(tensor_bytes);
  auto& top5 = *v2_tensor.add_outputs();
  top5.set_name("probabilities");
  (*top5.mutable_parameters())["classification"].set_int64_param(5);

  // The tensor over HTTP: as JSON numbers, and in binary after the JSON.
  const std::string http_shape = absl::StrCat("[1,", absl::StrJoin(shape, ","), "]");
  const std::string http_top5 =
      R"("outputs": [{"name": "probabilities", "parameters": {"classification": 5}}]})";
  const std::string http_json_tensor = absl::StrCat(
      R"({"inputs": [{"name": "input", "datatype": "FP32", "shape": )", http_shape,
      R"(, "data": [)", absl::StrJoin(values, ","), "]}], ", http_top5);
  const std::string http_binary_header =
      absl::StrCat(R"({"inputs": [{"name": "input", "datatype": "FP32", "shape": )",
                   http_shape, R"(, "parameters": {"binary_data_size": )",
                   tensor_bytes.size(), "}}], ", http_top5);
  const std::string http_binary_tensor = http_binary_header + tensor_bytes;

  std::vector<v1::ClassifyRequest> v1_jpegs;
  std::vector<inference::ModelInferRequest> v2_jpegs;
  std::vector<std::string> http_v2_jpegs, http_v1_jpegs;
  for (const std::string& file : jpegs) {
    const std::string jpeg = ReadFile(file);
    v1::ClassifyRequest& v1_request = v1_jpegs.emplace_back();
    v1_request.set_model(model);
    v1_request.add_inputs()->set_image(jpeg);
    inference::ModelInferRequest& v2_request = v2_jpegs.emplace_back();
    v2_request.set_model_name(model);
    auto& input = *v2_request.add_inputs();
    input.set_name("images");
    input.set_datatype("BYTES");
    input.add_shape(1);
    const uint32_t size = jpeg.size();
    v2_request.add_raw_input_contents(
        absl::StrCat(std::string(reinterpret_cast<const char*>(&size), 4), jpeg));
    *v2_request.add_outputs() = top5;
    const std::string base64 = absl::Base64Escape(jpeg);
    http_v2_jpegs.push_back(absl::StrCat(
        R"({"inputs": [{"name": "images", "shape": [1], "datatype": "BYTES", "data": [")",
        base64,
        R"("]}], "outputs": [{"name": "probabilities", "parameters": {"classification": 5}}]})"));
    http_v1_jpegs.push_back(
        absl::StrCat(R"({"inputs": [{"image": ")", base64, R"("}], "top_k": 5})"));
  }

  const std::string v1_tensor_name = "headway.v1 gRPC, FLOAT32 tensor";
  const std::string v1_jpeg_name = "headway.v1 gRPC, JPEG";
  std::vector<Protocol> protocols;
  protocols.push_back(
      {v1_tensor_name, v1_tensor_name, [=] {
         auto stub = v1::InferenceService::NewStub(channel((*next_index)++));
         return [stub = std::shared_ptr(std::move(stub)), v1_tensor, deadline] {
           grpc::ClientContext context;
           context.set_deadline(deadline());
           v1::ClassifyResponse response;
           return stub->Classify(&context, v1_tensor, &response).ok();
         };
       }});
  protocols.push_back(
      {"Open Inference gRPC, raw FP32", v1_tensor_name, [=] {
         auto stub = inference::GRPCInferenceService::NewStub(channel((*next_index)++));
         return [stub = std::shared_ptr(std::move(stub)), v2_tensor, deadline] {
           grpc::ClientContext context;
           context.set_deadline(deadline());
           inference::ModelInferResponse response;
           return stub->ModelInfer(&context, v2_tensor, &response).ok();
         };
       }});
  protocols.push_back(
      {v1_jpeg_name, v1_jpeg_name, [=] {
         auto stub = v1::InferenceService::NewStub(channel((*next_index)++));
         return [stub = std::shared_ptr(std::move(stub)), v1_jpegs, deadline,
                 i = size_t{0}]() mutable {
           grpc::ClientContext context;
           context.set_deadline(deadline());
           v1::ClassifyResponse response;
           return stub->Classify(&context, v1_jpegs[i++ % v1_jpegs.size()], &response)
               .ok();
         };
       }});
  protocols.push_back(
      {"Open Inference gRPC, raw BYTES JPEG", v1_jpeg_name, [=] {
         auto stub = inference::GRPCInferenceService::NewStub(channel((*next_index)++));
         return [stub = std::shared_ptr(std::move(stub)), v2_jpegs, deadline,
                 i = size_t{0}]() mutable {
           grpc::ClientContext context;
           context.set_deadline(deadline());
           inference::ModelInferResponse response;
           return stub->ModelInfer(&context, v2_jpegs[i++ % v2_jpegs.size()], &response)
               .ok();
         };
       }});
  const std::string v2_path = absl::StrCat("/v2/models/", model, "/infer");
  const std::string v1_path = absl::StrCat("/v1/models/", model, ":classify");
  protocols.push_back(
      {"HTTP Open Inference JSON, FP32 numbers", v1_tensor_name,
       [=] { return [=] { return HttpPost(http_port, v2_path, http_json_tensor); }; }});
  protocols.push_back({"HTTP Open Inference, binary FP32", v1_tensor_name, [=] {
                         return [=] {
                           return HttpPost(http_port, v2_path, http_binary_tensor,
                                           http_binary_header.size());
                         };
                       }});
  protocols.push_back({"HTTP Open Inference JSON, base64 JPEG", v1_jpeg_name, [=] {
                         return [=, i = size_t{0}]() mutable {
                           return HttpPost(http_port, v2_path,
                                           http_v2_jpegs[i++ % http_v2_jpegs.size()]);
                         };
                       }});
  protocols.push_back({"HTTP headway.v1 JSON, base64 JPEG", v1_jpeg_name, [=] {
                         return [=, i = size_t{0}]() mutable {
                           return HttpPost(http_port, v1_path,
                                           http_v1_jpegs[i++ % http_v1_jpegs.size()]);
                         };
                       }});
  return protocols;
}

int Main() {
  std::filesystem::path work = std::filesystem::temp_directory_path() /
                               absl::StrCat("headway-bench-protocols-", getpid());
  std::filesystem::create_directories(work);
  std::filesystem::path store = absl::GetFlag(FLAGS_model_store);
  std::vector<std::string> jpegs = absl::GetFlag(FLAGS_images);
  if (store.empty()) {
    const std::string make =
        absl::StrCat("/usr/bin/python3 ", HEADWAY_SOURCE_DIR,
                     "/bench/make_bench_models.py ", work.string(), " >/dev/null");
    if (std::system(make.c_str()) != 0) {
      std::cerr << "headway_bench_protocols: " << make << " failed\n";
      return 1;
    }
    store = work / "store";
  }
  if (jpegs.empty()) {
    for (const auto& entry : std::filesystem::directory_iterator(work / "jpeg")) {
      jpegs.push_back(entry.path().string());
    }
    std::sort(jpegs.begin(), jpegs.end());
  }
  const int http_port = bench::FreePort();
  std::vector<std::string> flags = absl::GetFlag(FLAGS_server_flags);
  flags.push_back(absl::StrCat("--http_port=", http_port));
  const bench::ServerRun server =
      bench::StartServer(absl::GetFlag(FLAGS_server), store, work, flags);
  const std::string model = absl::GetFlag(FLAGS_model);
  const std::vector<Protocol> protocols =
      Protocols(server.target, http_port, model, jpegs);

  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  std::map<std::string, std::vector<Figures>> runs;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    for (const Protocol& protocol : protocols) {
      runs[protocol.name].push_back(
          Run(protocol, concurrency, absl::GetFlag(FLAGS_seconds)));
      std::cerr << "round " << round + 1 << ": " << protocol.name << ": "
                << runs[protocol.name].back().throughput << " calls/s\n";
    }
  }
  bench::StopServer(server);
  std::filesystem::remove_all(work);

  auto median = [](std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
  };
  std::map<std::string, double> throughput;
  for (const auto& [name, figures] : runs) {
    std::vector<double> values;
    for (const Figures& f : figures) values.push_back(f.throughput);
    throughput[name] = median(values);
  }
  std::cout << "CPU: " << bench::CpuLine() << "\n";
  std::cout << absl::StrFormat(
      "Model %s, one input per call, top 5 labels, %d closed-loop callers per protocol, "
      "%s per run, median of %d interleaved rounds; server flags: %s\n\n",
      model, concurrency, absl::FormatDuration(absl::GetFlag(FLAGS_seconds)),
      absl::GetFlag(FLAGS_rounds), absl::StrJoin(absl::GetFlag(FLAGS_server_flags), " "));
  std::cout << "| protocol | calls/s | vs headway.v1 gRPC | p50 ms | p99 ms | errors |\n"
            << "|---|---:|---:|---:|---:|---:|\n";
  for (const Protocol& protocol : protocols) {
    const std::vector<Figures>& figures = runs[protocol.name];
    std::vector<double> p50, p99;
    int64_t errors = 0;
    for (const Figures& f : figures) {
      p50.push_back(f.p50_ms);
      p99.push_back(f.p99_ms);
      errors += f.errors;
    }
    std::cout << absl::StrFormat(
        "| %s | %.1f | %.2f | %.1f | %.1f | %d |\n", protocol.name,
        throughput[protocol.name],
        throughput[protocol.name] / throughput[protocol.baseline], median(p50),
        median(p99), errors);
  }
  return 0;
}

}  // namespace
}  // namespace headway

int main(int argc, char** argv) {
  headway::SetVersionFlag("headway_bench_protocols");
  absl::SetProgramUsageMessage(
      "Classifies with one model through every protocol Headway speaks, at the same "
      "concurrency, in one run.\nUsage: headway_bench_protocols [flags]");
  absl::ParseCommandLine(argc, argv);
  headway::ApplyBuildTypeDefaults();
  return headway::Main();
}
