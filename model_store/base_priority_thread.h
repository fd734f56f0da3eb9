// StartAtBasePriority: starts a thread at the process's base scheduling priority,
// whatever the calling thread's.
//
// On Linux a new thread inherits its creator's nice value, and an unprivileged thread
// cannot lower it again. Loads and swaps run on low-priority threads (nice 10) so that
// they yield the CPUs to inference; the batcher workers of a model they load must not
// inherit that, or the model would serve at the priority of background work and
// compete with the next load as an equal. So such threads are created by one spawner
// thread started at the base priority.
//
// StartBasePriorityThreads() starts the spawner; call it from main() before any
// thread's priority is lowered. Without it (tests, tools), StartAtBasePriority starts
// the thread itself, as the caller's. Thread-safe.
#ifndef HEADWAY_MODEL_STORE_BASE_PRIORITY_THREAD_H_
#define HEADWAY_MODEL_STORE_BASE_PRIORITY_THREAD_H_

#include <functional>
#include <thread>

namespace headway {

void StartBasePriorityThreads();

std::thread StartAtBasePriority(std::function<void()> body);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_BASE_PRIORITY_THREAD_H_
