#include "model_store/thread_name.h"

#include <pthread.h>

namespace headway {

void NameThisThread(const std::string& name) {
  constexpr size_t kLinuxLimit = 15;  // TASK_COMM_LEN less the terminating NUL
  pthread_setname_np(pthread_self(), name.substr(0, kLinuxLimit).c_str());
}

}  // namespace headway
