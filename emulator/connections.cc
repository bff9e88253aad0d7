#include "emulator/connections.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"

namespace tokenbroker::emulator::internal {

bool ForEachServerSocket(
    int local_port,
    const std::function<bool(int fd, const std::string& peer_host,
                             int peer_port)>& fn) {
  const std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir("/proc/self/fd"),
                                                &closedir);
  if (dir == nullptr) return false;
  while (dirent* entry = readdir(dir.get())) {
    int fd = 0;
    if (!absl::SimpleAtoi(entry->d_name, &fd) || fd == dirfd(dir.get())) {
      continue;
    }
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;
    }
    char local_host[NI_MAXHOST], local_serv[NI_MAXSERV];
    char peer_host[NI_MAXHOST], peer_serv[NI_MAXSERV];
    int peer_port = 0;
    if (getnameinfo(reinterpret_cast<sockaddr*>(&local), local_len, local_host,
                    sizeof(local_host), local_serv, sizeof(local_serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0 ||
        getnameinfo(reinterpret_cast<sockaddr*>(&peer), peer_len, peer_host,
                    sizeof(peer_host), peer_serv, sizeof(peer_serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0 ||
        std::to_string(local_port) != local_serv ||
        !absl::SimpleAtoi(peer_serv, &peer_port)) {
      continue;
    }
    if (fn(fd, peer_host, peer_port)) return true;
  }
  return false;
}

int ConnectionOf(const httplib::Request& req) {
  int found = -1;
  ForEachServerSocket(
      req.local_port,
      [&req, &found](int fd, const std::string& peer_host, int peer_port) {
        if (peer_port != req.remote_port || peer_host != req.remote_addr) {
          return false;
        }
        found = fd;
        return true;
      });
  return found;
}

bool ShutdownConnectionOf(const httplib::Request& req) {
  const int fd = ConnectionOf(req);
  if (fd < 0) return false;
  // RST instead of FIN once httplib closes the socket.
  linger lin{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
  shutdown(fd, SHUT_RDWR);
  return true;
}

bool WaitUnlessClientCloses(const httplib::Request& req, absl::Duration delay) {
  const absl::Time end = absl::Now() + delay;
  const int fd = ConnectionOf(req);
  while (fd >= 0) {
    const absl::Duration left = end - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    pollfd watched{fd, POLLRDHUP, 0};
    const int n = poll(&watched, 1,
                       static_cast<int>(absl::ToInt64Milliseconds(
                           absl::Ceil(left, absl::Milliseconds(1)))));
    if (n < 0 && errno == EINTR) continue;
    if (n > 0 && (watched.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
      return false;
    }
    if (n != 0) break;  // Not a hang-up (e.g. POLLNVAL): sleep the rest.
  }
  absl::SleepFor(end - absl::Now());
  return true;
}

}  // namespace tokenbroker::emulator::internal
