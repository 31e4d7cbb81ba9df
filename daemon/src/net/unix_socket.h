// The listening Unix socket (PgBouncer's unix_socket_dir/.s.PGSQL.<port>, the name libpq
// looks for): a stale socket file left by a process that died is replaced, one a live
// process listens on is not.
#pragma once

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <stdexcept>
#include <string>

namespace pgcohere::net {

// The pooler's listening sockets, TCP and Unix: they accept net::Stream::Socket (bound to
// the io_context's executor type).
using StreamAcceptor = boost::asio::basic_socket_acceptor<boost::asio::generic::stream_protocol,
                                                          boost::asio::io_context::executor_type>;

// Another process listens on the socket file already.
struct SocketInUse : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "<dir>/.s.PGSQL.<port>"; a dir starting with '@' names a socket in Linux's abstract
// namespace (the returned path then starts with a NUL byte and no file is involved).
std::string unix_socket_path(const std::string& dir, int port);

// Opens, binds and listens. mode (octal text, "0777") and group (a group name, "" to keep
// the process's) apply to a socket file. Throws SocketInUse, or std::runtime_error naming
// the path and the reason.
void listen_unix(StreamAcceptor& acceptor, const std::string& path,
                 const std::string& mode, const std::string& group, int backlog);

// Removes the socket file at stop (nothing for an abstract socket).
void remove_unix_socket(const std::string& path);

}  // namespace pgcohere::net
