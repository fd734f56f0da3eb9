// ApplyBuildTypeDefaults: what a Headway binary's build type sets for the whole process.
// Debian's abseil keeps absl::Mutex's deadlock detection on in every build, a graph
// lookup on each lock taken (gRPC's locks included): about 2% of the server's CPU
// serving the digits model, and 4% of the load generator's at 256 clients. Release
// builds (NDEBUG) turn it off; debug builds keep it, to catch lock-order mistakes in
// tests.
//
// Call from main() before any thread starts (abseil reads the mode without a lock).
#ifndef HEADWAY_VERSION_BUILD_TYPE_DEFAULTS_H_
#define HEADWAY_VERSION_BUILD_TYPE_DEFAULTS_H_

namespace headway {

void ApplyBuildTypeDefaults();

}  // namespace headway

#endif  // HEADWAY_VERSION_BUILD_TYPE_DEFAULTS_H_
