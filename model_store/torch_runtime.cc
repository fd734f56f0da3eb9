#include "model_store/torch_runtime.h"

#include <ATen/Parallel.h>

namespace headway {

void ConfigureTorchThreads(int intra_op_threads) {
  if (intra_op_threads > 0) at::set_num_threads(intra_op_threads);
}

}  // namespace headway
