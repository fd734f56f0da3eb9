// Classifies an image with a Headway server and prints the top labels.
//   classify TARGET MODEL IMAGE
#include <fstream>
#include <iostream>
#include <sstream>

#include "client/headway_client.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: classify TARGET MODEL IMAGE\n";
    return 2;
  }
  headway::HeadwayClient::Options options;
  options.target = argv[1];
  auto client = headway::HeadwayClient::Create(options);
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 1;
  }
  std::ifstream image(argv[3], std::ios::binary);
  std::ostringstream bytes;
  bytes << image.rdbuf();
  headway::v1::ClassifyRequest request;
  request.set_model(argv[2]);
  request.set_top_k(3);
  request.add_inputs()->set_image(bytes.str());
  auto answer = (*client)->Classify(request);
  if (!answer.ok()) {
    std::cerr << answer.status() << "\n";
    return 1;
  }
  for (const auto& label : answer->results(0).labels()) {
    std::cout << label.label() << " " << label.score() << "\n";
  }
  return 0;
}
