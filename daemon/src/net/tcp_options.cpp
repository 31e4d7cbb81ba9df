// See tcp_options.h.
#include "net/tcp_options.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace pgcohere::net {

namespace {
void set(int fd, int level, int name, int value) { ::setsockopt(fd, level, name, &value, sizeof value); }
}  // namespace

void apply_tcp_options(int fd, const TcpOptions& o) {
  set(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  set(fd, SOL_SOCKET, SO_KEEPALIVE, o.keepalive ? 1 : 0);
  if (o.keepalive) {
    if (o.keepidle > 0) set(fd, IPPROTO_TCP, TCP_KEEPIDLE, o.keepidle);
    if (o.keepintvl > 0) set(fd, IPPROTO_TCP, TCP_KEEPINTVL, o.keepintvl);
    if (o.keepcnt > 0) set(fd, IPPROTO_TCP, TCP_KEEPCNT, o.keepcnt);
  }
  if (o.user_timeout_ms > 0) set(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, o.user_timeout_ms);
}

}  // namespace pgcohere::net
