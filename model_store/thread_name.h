// NameThisThread: names the calling thread for ps, top -H, perf and gdb, so that an
// operator can tell Headway's threads apart (inference hand-off, batch workers,
// management, store following). Linux keeps the first 15 characters; elsewhere, and
// when naming fails, the thread keeps its name. Thread-safe (each thread names itself).
#ifndef HEADWAY_MODEL_STORE_THREAD_NAME_H_
#define HEADWAY_MODEL_STORE_THREAD_NAME_H_

#include <string>

namespace headway {

void NameThisThread(const std::string& name);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_THREAD_NAME_H_
