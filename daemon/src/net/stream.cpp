// Client and server byte streams (see stream.h).
#include "net/stream.h"

#include <optional>
#include <utility>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>

// g++ 12 misreads Asio 1.18's coroutine frame allocator (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace pgcohere::net {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

boost::system::error_code Stream::start_tls(std::shared_ptr<ssl::context> context) {
  boost::system::error_code ec;
  // OpenSSL reads and writes the socket itself: it must not block, it says "want read"
  // or "want write" and the stream waits for the socket.
  socket_.non_blocking(true, ec);
  if (ec) return ec;
  auto tls = std::make_unique<Tls>();
  tls->context = std::move(context);
  tls->ssl = SSL_new(tls->context->native_handle());
  if (!tls->ssl || SSL_set_fd(tls->ssl, socket_.native_handle()) != 1) {
    ERR_clear_error();
    return asio::error::no_memory;
  }
  // Partial writes: an Asio write loop continues from what was taken. The buffer of a
  // retried write may move (asio::async_write advances its own copy of the sequence).
  SSL_set_mode(tls->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  tls_ = std::move(tls);
  return {};
}

Stream::Step Stream::tls_step(bool read, void* data, std::size_t size, std::size_t& n,
                              boost::system::error_code& ec) {
  ERR_clear_error();  // SSL_get_error reads this thread's queue: only this call's errors
  errno = 0;
  int r = read ? SSL_read_ex(tls_->ssl, data, size, &n) : SSL_write_ex(tls_->ssl, data, size, &n);
  if (r == 1) return Step::done;
  n = 0;
  switch (SSL_get_error(tls_->ssl, r)) {
    case SSL_ERROR_WANT_READ: return Step::want_read;
    case SSL_ERROR_WANT_WRITE: return Step::want_write;
    case SSL_ERROR_ZERO_RETURN:  // close_notify, or an EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
      ec = asio::error::eof;
      return Step::failed;
    case SSL_ERROR_SYSCALL:
      ec = errno ? boost::system::error_code(errno, boost::system::system_category())
                 : boost::system::error_code(asio::error::eof);
      return Step::failed;
    default: {
      unsigned long e = ERR_peek_last_error();
      ec = e ? boost::system::error_code(static_cast<int>(e), asio::error::get_ssl_category())
             : boost::system::error_code(asio::error::connection_reset);
      ERR_clear_error();
      return Step::failed;
    }
  }
}

asio::awaitable<void> Stream::handshake(bool server, boost::system::error_code& ec) {
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int r = server ? SSL_accept(tls_->ssl) : SSL_connect(tls_->ssl);
    if (r == 1) co_return;
    int err = SSL_get_error(tls_->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      co_await socket_.async_wait(err == SSL_ERROR_WANT_READ ? Socket::wait_read : Socket::wait_write,
                                  asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      continue;
    }
    if (err == SSL_ERROR_SSL) {
      unsigned long e = ERR_peek_last_error();
      ec = e ? boost::system::error_code(static_cast<int>(e), asio::error::get_ssl_category())
             : boost::system::error_code(asio::error::connection_reset);
    } else {
      ec = errno ? boost::system::error_code(errno, boost::system::system_category())
                 : boost::system::error_code(asio::error::eof);
    }
    ERR_clear_error();
    co_return;
  }
}

asio::awaitable<boost::system::error_code> Stream::write_all(std::string_view data) {
  boost::system::error_code ec;
  if (!tls_ && !data.empty()) {
    if (!socket_.non_blocking()) socket_.non_blocking(true, ec);
    std::size_t n = ec ? 0 : socket_.write_some(asio::buffer(data.data(), data.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) ec.clear();
    else if (ec) co_return ec;
    data.remove_prefix(n);
    if (data.empty()) co_return ec;
  }
  co_await asio::async_write(*this, asio::buffer(data.data(), data.size()), asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
}

asio::awaitable<void> Stream::accept_tls(std::shared_ptr<ssl::context> context, boost::system::error_code& ec) {
  ec = start_tls(std::move(context));
  if (ec) co_return;
  co_await handshake(true, ec);
}

asio::awaitable<void> Stream::connect_tls(std::shared_ptr<ssl::context> context, const std::string& host,
                                          bool check_host, boost::system::error_code& ec) {
  ec = start_tls(std::move(context));
  if (ec) co_return;
  SSL* ssl = tls_->ssl;
  boost::system::error_code not_ip;
  auto address = asio::ip::make_address(host, not_ip);
  // SNI only for names, as libpq does (an IP address in SNI is not allowed).
  if (not_ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (check_host) {
    // OpenSSL compares the certificate's subjectAltName (or CN when it has no DNS names)
    // during the handshake, which then fails with "certificate verify failed".
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    int ok = not_ip ? X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0)
                    : X509_VERIFY_PARAM_set1_ip_asc(param, address.to_string().c_str());
    if (ok != 1) {
      ec = asio::error::invalid_argument;
      co_return;
    }
  }
  co_await handshake(false, ec);
}

std::string Stream::tls_description() {
  if (!tls_) return {};
  SSL* ssl = tls_->ssl;
  std::string out = SSL_get_version(ssl);
  if (const char* cipher = SSL_get_cipher_name(ssl)) out.append("/").append(cipher);
  int group = static_cast<int>(SSL_get_negotiated_group(ssl));
  if (group > 0) {
    if (const char* name = OBJ_nid2sn(group)) out.append("/ECDH=").append(name);
  }
  return out;
}

namespace {
// A TCP peer's address as text and its port; nullopt for a Unix socket or an unknown peer.
std::optional<std::pair<std::string, unsigned>> tcp_peer(Stream::Socket& socket) {
  boost::system::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return std::nullopt;
  const sockaddr* sa = ep.data();
  char text[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return std::make_pair(std::string(text), static_cast<unsigned>(ntohs(in->sin_port)));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return std::make_pair(std::string(text), static_cast<unsigned>(ntohs(in6->sin6_port)));
  }
  return std::nullopt;
}
}  // namespace

std::string Stream::peer_name(Socket& socket) {
  if (auto p = tcp_peer(socket)) return p->first + ":" + std::to_string(p->second);
  boost::system::error_code ec;
  socket.remote_endpoint(ec);
  return ec ? std::string() : std::string("unix");
}

std::string Stream::peer_address(Socket& socket) {
  auto p = tcp_peer(socket);
  return p ? p->first : std::string();
}

}  // namespace pgcohere::net
