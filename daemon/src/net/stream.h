// One byte stream to a client or a server, whatever carries it: a TCP or Unix socket, in
// plain text or, after the SSLRequest exchange, inside TLS. The session code reads and
// writes it as any Asio stream (async_read_some, async_write_some, asio::async_write).
// Plain text costs one branch per operation: no allocation, no copy, no virtual call.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <memory>
#include <string>
#include <utility>

namespace pgcohere::net {

class Stream {
 public:
  using Socket = boost::asio::generic::stream_protocol::socket;
  using executor_type = Socket::executor_type;

  explicit Stream(Socket socket) : socket_(std::move(socket)) {}
  explicit Stream(boost::asio::io_context& io) : socket_(io) {}
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  // The socket under any TLS: connect, socket options, waits, close.
  Socket& lowest() { return socket_; }
  bool tls() const { return tls_ != nullptr; }

  template <typename Buffers, typename Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    if (tls_) return tls_->stream.async_read_some(buffers, std::forward<Token>(token));
    return socket_.async_read_some(buffers, std::forward<Token>(token));
  }
  template <typename Buffers, typename Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    if (tls_) return tls_->stream.async_write_some(buffers, std::forward<Token>(token));
    return socket_.async_write_some(buffers, std::forward<Token>(token));
  }

  // TLS from here on, with the pooler as the TLS server (a client's SSLRequest was
  // answered 'S'). Nothing may have been read past the SSLRequest. ec: why it failed.
  boost::asio::awaitable<void> accept_tls(std::shared_ptr<boost::asio::ssl::context> context,
                                          boost::system::error_code& ec);
  // TLS from here on, with the pooler as the TLS client (the server answered 'S').
  // check_host: the certificate must name `host` (a DNS name or an IP address); the
  // context decides whether the chain is verified at all.
  boost::asio::awaitable<void> connect_tls(std::shared_ptr<boost::asio::ssl::context> context, const std::string& host,
                                           bool check_host, boost::system::error_code& ec);

  // Closes the socket (pending operations end with operation_aborted); no TLS close_notify.
  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  void close(boost::system::error_code& ec) { socket_.close(ec); }

  // PgBouncer's `tls` column of SHOW CLIENTS/SERVERS ("TLSv1.3/TLS_AES_256_GCM_SHA384/
  // ECDH=X25519"); "" in plain text.
  std::string tls_description();

  // "address:port" of the peer of a TCP socket; "unix" for a Unix socket; "" if unknown.
  static std::string peer_name(Socket& socket);

 private:
  struct Tls {
    Tls(Socket& socket, std::shared_ptr<boost::asio::ssl::context> c)
        : context(std::move(c)), stream(socket, *context) {}
    std::shared_ptr<boost::asio::ssl::context> context;  // outlives the SSL object built from it
    boost::asio::ssl::stream<Socket&> stream;
  };
  Socket socket_;
  std::unique_ptr<Tls> tls_;  // declared after socket_: destroyed before it
};

}  // namespace pgcohere::net
