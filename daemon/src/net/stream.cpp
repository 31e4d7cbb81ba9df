// Client and server byte streams (see stream.h).
#include "net/stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

// g++ 12 misreads Asio 1.18's coroutine frame allocator (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace pgcohere::net {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

asio::awaitable<void> Stream::accept_tls(std::shared_ptr<ssl::context> context, boost::system::error_code& ec) {
  tls_ = std::make_unique<Tls>(socket_, std::move(context));
  co_await tls_->stream.async_handshake(ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> Stream::connect_tls(std::shared_ptr<ssl::context> context, const std::string& host,
                                          bool check_host, boost::system::error_code& ec) {
  tls_ = std::make_unique<Tls>(socket_, std::move(context));
  SSL* ssl = tls_->stream.native_handle();
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
  co_await tls_->stream.async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
}

std::string Stream::tls_description() {
  if (!tls_) return {};
  SSL* ssl = tls_->stream.native_handle();
  std::string out = SSL_get_version(ssl);
  if (const char* cipher = SSL_get_cipher_name(ssl)) out.append("/").append(cipher);
  int group = static_cast<int>(SSL_get_negotiated_group(ssl));
  if (group > 0) {
    if (const char* name = OBJ_nid2sn(group)) out.append("/ECDH=").append(name);
  }
  return out;
}

std::string Stream::peer_name(Socket& socket) {
  boost::system::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return {};
  const sockaddr* sa = ep.data();
  char text[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(in6->sin6_port));
  }
  return "unix";
}

}  // namespace pgcohere::net
