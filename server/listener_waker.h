// StopWhileWaking: stops a civetweb server (Headway's metrics and HTTP endpoints) at
// once. civetweb looks at its stop flag only between polls of its listening socket, 2 s
// apart; connecting to the port wakes the poll.
//
// Thread-safe.
#ifndef HEADWAY_SERVER_LISTENER_WAKER_H_
#define HEADWAY_SERVER_LISTENER_WAKER_H_

#include <functional>
#include <string>

namespace headway {

// Runs `stop` (which blocks until the server has stopped) while connecting to
// `host`:`port` ("0.0.0.0" and "[::]" meaning this machine) every 5 ms.
void StopWhileWaking(const std::string& host, int port,
                     const std::function<void()>& stop);

}  // namespace headway

#endif  // HEADWAY_SERVER_LISTENER_WAKER_H_
