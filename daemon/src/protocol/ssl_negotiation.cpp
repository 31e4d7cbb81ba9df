// TLS negotiation decisions (see ssl_negotiation.h).
#include "protocol/ssl_negotiation.h"

namespace pgcohere::protocol {

namespace {
constexpr std::string_view kNames[] = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"};
}

std::optional<SslMode> parse_ssl_mode(std::string_view text) {
  for (int i = 0; i < 6; ++i)
    if (text == kNames[i]) return static_cast<SslMode>(i);
  return std::nullopt;
}

std::string_view ssl_mode_name(SslMode mode) { return kNames[static_cast<int>(mode)]; }

char answer_ssl_request(SslMode mode, bool unix_socket) {
  return mode == SslMode::disable || unix_socket ? 'N' : 'S';
}

bool client_tls_required(SslMode mode, bool unix_socket) { return !unix_socket && mode >= SslMode::require; }

bool client_certificate_required(SslMode mode) { return mode >= SslMode::verify_ca; }

bool server_tls_requested(SslMode mode, bool unix_socket) {
  // PgBouncer leaves "allow" (plain first, TLS if plain is refused) undefined and asks
  // for TLS as "prefer" does; so do we.
  return !unix_socket && mode != SslMode::disable;
}

ServerTlsStep on_ssl_answer(SslMode mode, char answer) {
  using K = ServerTlsStep::Kind;
  if (answer == 'S') return {K::handshake, {}};
  if (answer == 'N') {
    if (mode >= SslMode::require)
      return {K::fail, "server refused TLS (server_tls_sslmode = " + std::string(ssl_mode_name(mode)) + ")"};
    return {K::plain, {}};
  }
  // 'E' comes from servers too old to know SSLRequest; anything else is not PostgreSQL.
  return {K::fail, "unexpected answer to SSLRequest from server"};
}

bool server_certificate_checked(SslMode mode) { return mode >= SslMode::verify_ca; }

bool server_host_checked(SslMode mode) { return mode == SslMode::verify_full; }

}  // namespace pgcohere::protocol
