// One byte stream to a client or a server, whatever carries it: a TCP or Unix socket, in
// plain text or, after the SSLRequest exchange, inside TLS. The session code reads and
// writes it as any Asio stream (async_read_some, async_write_some, asio::async_write).
// Plain text costs one branch per operation: no allocation, no copy, no virtual call.
//
// TLS runs OpenSSL straight on the non-blocking socket (SSL_set_fd) and waits for
// readiness when OpenSSL wants to read or write, instead of Asio's ssl::stream, which
// holds four 17 kB buffers per connection (its own two and a BIO pair): an idle TLS
// connection keeps only OpenSSL's state (SSL_MODE_RELEASE_BUFFERS). One read and one
// write may be under way at once, as OpenSSL allows on one thread.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace pgcohere::net {

class Stream {
 public:
  // Bound to the io_context's own executor type, not any_io_executor: that saves 40 bytes in
  // every socket and in every pending operation (an idle client's parked wait included).
  using Socket = boost::asio::basic_stream_socket<boost::asio::generic::stream_protocol,
                                                  boost::asio::io_context::executor_type>;
  using executor_type = Socket::executor_type;

  explicit Stream(Socket socket) : socket_(std::move(socket)) {}
  explicit Stream(boost::asio::io_context& io) : socket_(io) {}
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  // The socket under any TLS: connect, socket options, waits, close.
  Socket& lowest() { return socket_; }
  bool tls() const { return tls_ != nullptr; }
  // TLS: OpenSSL holds bytes (decrypted or not) that a read would return without the
  // socket being readable.
  bool tls_pending() const { return tls_ && SSL_has_pending(tls_->ssl) == 1; }
  // TLS started and its handshake not done: nothing can be written yet.
  bool tls_handshaking() const { return tls_ && SSL_is_init_finished(tls_->ssl) != 1; }

  template <typename Buffers, typename Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    if (!tls_) return socket_.async_read_some(buffers, std::forward<Token>(token));
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, boost::asio::mutable_buffer b) { tls_io<true>(b.data(), b.size(), std::move(handler), true); },
        token, first_buffer(boost::asio::buffer_sequence_begin(buffers), boost::asio::buffer_sequence_end(buffers)));
  }
  template <typename Buffers, typename Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    if (!tls_) return socket_.async_write_some(buffers, std::forward<Token>(token));
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, boost::asio::const_buffer b) {
          tls_io<false>(const_cast<void*>(b.data()), b.size(), std::move(handler), true);
        },
        token, first_buffer(boost::asio::buffer_sequence_begin(buffers), boost::asio::buffer_sequence_end(buffers)));
  }

  // Writes all of `data`: first as much as the socket takes at once, with a plain send
  // (no TLS), then the rest with async_write. An async_write that could complete at once
  // still goes through the scheduler before its caller resumes; the pooler writes twice
  // per transaction, and the socket almost always takes the whole message.
  boost::asio::awaitable<boost::system::error_code> write_all(std::string_view data);

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
  // The address alone of a TCP peer; "" for a Unix socket or an unknown peer.
  static std::string peer_address(Socket& socket);

 private:
  struct Tls {
    std::shared_ptr<boost::asio::ssl::context> context;  // outlives the SSL object built from it
    SSL* ssl = nullptr;
    ~Tls() {
      if (ssl) SSL_free(ssl);
    }
  };
  // What one SSL_read_ex / SSL_write_ex call came to.
  enum class Step { done, want_read, want_write, failed };
  Step tls_step(bool read, void* data, std::size_t size, std::size_t& n, boost::system::error_code& ec);
  boost::system::error_code start_tls(std::shared_ptr<boost::asio::ssl::context> context);
  boost::asio::awaitable<void> handshake(bool server, boost::system::error_code& ec);

  // OpenSSL takes one buffer per call: the first non-empty one (an Asio stream may
  // transfer fewer bytes than asked).
  template <typename Iterator>
  static auto first_buffer(Iterator begin, Iterator end) {
    using Buffer = std::decay_t<decltype(*begin)>;
    for (auto it = begin; it != end; ++it)
      if (Buffer(*it).size() > 0) return Buffer(*it);
    return Buffer();
  }

  // One TLS read or write: tries OpenSSL, waits for the socket when it wants to, tries
  // again with the same arguments (as OpenSSL requires). `first`: called from the
  // initiating function, which must not complete inline.
  template <bool Read, typename Handler>
  void tls_io(void* data, std::size_t size, Handler handler, bool first) {
    boost::system::error_code ec;
    std::size_t n = 0;
    Step step = size == 0 ? Step::done : tls_step(Read, data, size, n, ec);
    if (step == Step::want_read || step == Step::want_write) {
      socket_.async_wait(step == Step::want_read ? Socket::wait_read : Socket::wait_write,
                         [this, data, size, handler = std::move(handler)](const boost::system::error_code& wait_ec) mutable {
                           if (wait_ec) {
                             handler(wait_ec, std::size_t(0));
                             return;
                           }
                           tls_io<Read>(data, size, std::move(handler), false);
                         });
      return;
    }
    if (!first) {
      handler(ec, n);
      return;
    }
    auto ex = boost::asio::get_associated_executor(handler, socket_.get_executor());
    boost::asio::post(ex, [handler = std::move(handler), ec, n]() mutable { handler(ec, n); });
  }

  Socket socket_;
  std::unique_ptr<Tls> tls_;
};

}  // namespace pgcohere::net
