#ifndef TOKENBROKER_EMULATOR_CONNECTIONS_H_
#define TOKENBROKER_EMULATOR_CONNECTIONS_H_

// The TCP connection behind an httplib request (library-internal).
// httplib 0.11.4 hides sockets from handlers, so the emulator finds the server
// side of a connection by its two endpoints among this process's sockets
// (/proc/self/fd). Used by the reset and latency faults and by Stop().
// Thread-safe; Linux only.

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "httplib.h"

namespace tokenbroker::emulator::internal {

// Calls `fn(fd)` for each connected TCP socket of this process whose local
// port is `local_port`, until it returns true. Returns true if one did.
bool ForEachServerSocket(
    int local_port,
    const std::function<bool(int fd, const std::string& peer_host,
                             int peer_port)>& fn);

// The server side of the TCP connection `req` arrived on, or -1. The
// request's two endpoints identify the socket uniquely; it stays open until
// the handler returns (httplib closes it after that), so there is no race
// with descriptor reuse while the handler runs.
int ConnectionOf(const httplib::Request& req);

// Shuts down the TCP connection `req` arrived on (RST once httplib closes
// it), so that no byte of a response reaches the client. False if the
// socket cannot be found.
bool ShutdownConnectionOf(const httplib::Request& req);

// Waits `delay` before `req` is answered. Returns false, early, if the client
// closes the connection (FIN or RST) meanwhile. Only the hang-up is watched,
// not readable data, so a pipelined request does not end the wait. If the
// socket cannot be found, just sleeps.
bool WaitUnlessClientCloses(const httplib::Request& req, absl::Duration delay);

}  // namespace tokenbroker::emulator::internal

#endif  // TOKENBROKER_EMULATOR_CONNECTIONS_H_
