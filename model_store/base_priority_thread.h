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
// the thread itself, as the caller's. LowerThisThreadsPriority makes the calling thread
// one for background work. Thread-safe.
#ifndef HEADWAY_MODEL_STORE_BASE_PRIORITY_THREAD_H_
#define HEADWAY_MODEL_STORE_BASE_PRIORITY_THREAD_H_

#include <functional>
#include <thread>

namespace headway {

void StartBasePriorityThreads();

std::thread StartAtBasePriority(std::function<void()> body);

// The nice value of the threads running loads, swaps and store polling (the server's
// management pool, its store follower, fine-tuning jobs), so that they yield the CPUs
// to inference: at 10, about a tenth of a normal thread's CPU time when both want it.
inline constexpr int kBackgroundNiceness = 10;

// Makes the calling thread yield the CPUs to the process's other threads: nice
// `niceness` (0 or less changes nothing), and the shortest time slice the kernel
// grants (0.1 ms; Linux 6.12's EEVDF scheduler lets a thread ask for one), so that an
// inference thread that wakes takes its CPU back within 0.1 ms instead of waiting for
// the slice to run out (up to 3 ms, whatever the nice value). Kernels without custom
// slices keep their own; the nice value still holds.
void LowerThisThreadsPriority(int niceness);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_BASE_PRIORITY_THREAD_H_
