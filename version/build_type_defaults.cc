#include "version/build_type_defaults.h"

#include "absl/synchronization/mutex.h"

namespace headway {

void ApplyBuildTypeDefaults() {
#ifdef NDEBUG
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
}

}  // namespace headway
