// TCP options of the pooler's client and server sockets, as PgBouncer sets them:
// TCP_NODELAY always (the protocol's small messages must not wait for Nagle), keepalive
// with tcp_keepidle / tcp_keepintvl / tcp_keepcnt (seconds; 0 keeps the system's value),
// and tcp_user_timeout (milliseconds; 0 keeps the system's). Keepalive and the user
// timeout bound how long a peer that vanished without a FIN or RST (a half-open
// connection) holds a client or a server connection.
#pragma once

namespace pgcohere::net {

struct TcpOptions {
  bool keepalive = true;
  int keepidle = 0, keepintvl = 0, keepcnt = 0;
  int user_timeout_ms = 0;
};

// Best effort, on a connected TCP socket: an option the kernel refuses is left as it was.
void apply_tcp_options(int fd, const TcpOptions& options);

}  // namespace pgcohere::net
