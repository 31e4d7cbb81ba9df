// OpenSSL contexts from the client_tls_* and server_tls_* settings: one to accept clients
// (the pooler as TLS server), one to connect to PostgreSQL (the pooler as TLS client).
// Built at start and again at each reload, so that replaced certificate files take effect
// for new connections; a connection keeps the context it started with.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "config/config.h"
#include "protocol/ssl_negotiation.h"

namespace pgcohere::net {

// The sslmode with the context that carries it out (no context when the mode is disable).
struct TlsSide {
  protocol::SslMode mode = protocol::SslMode::disable;
  std::shared_ptr<boost::asio::ssl::context> context;
};

// Throw std::runtime_error naming the setting and file at fault, with OpenSSL's reason.
TlsSide make_client_side_tls(const config::DaemonSettings& d);  // client_tls_*
TlsSide make_server_side_tls(const config::DaemonSettings& d);  // server_tls_*

}  // namespace pgcohere::net
