// The TLS negotiation of the startup phase, PgBouncer's sslmode meanings on both sides:
// what the pooler answers a client's SSLRequest, whether a client must use TLS, and what
// it does with a server's one-byte answer to its own SSLRequest. Pure decisions, no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgcohere::protocol {

// client_tls_sslmode and server_tls_sslmode, in increasing strength.
enum class SslMode { disable, allow, prefer, require, verify_ca, verify_full };
std::optional<SslMode> parse_ssl_mode(std::string_view text);
std::string_view ssl_mode_name(SslMode mode);

// ---- the pooler as the server of its clients (client_tls_sslmode) ----
// PostgreSQL offers no TLS on a Unix socket, and neither does the pooler: there the
// answer is always 'N' and TLS is never required (the socket's file mode guards it).

// The byte that answers an SSLRequest: 'S' (TLS handshake next) or 'N' (go on in plain text).
char answer_ssl_request(SslMode mode, bool unix_socket);
// A StartupMessage that arrives in plain text is refused ("SSL required").
bool client_tls_required(SslMode mode, bool unix_socket);
// verify-ca and verify-full: the client must present a certificate the CA file signed.
bool client_certificate_required(SslMode mode);

// ---- the pooler as a client of PostgreSQL (server_tls_sslmode) ----

// Whether to send an SSLRequest before the StartupMessage.
bool server_tls_requested(SslMode mode, bool unix_socket);

// What to do with the server's answer to the SSLRequest.
struct ServerTlsStep {
  enum class Kind { handshake, plain, fail };
  Kind kind = Kind::fail;
  std::string error;  // for fail
};
ServerTlsStep on_ssl_answer(SslMode mode, char answer);
// Whether the server's certificate is checked against server_tls_ca_file (verify-ca,
// verify-full), and its name against the host connected to (verify-full).
bool server_certificate_checked(SslMode mode);
bool server_host_checked(SslMode mode);

}  // namespace pgcohere::protocol
