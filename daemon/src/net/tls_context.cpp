// TLS contexts (see tls_context.h).
#include "net/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdexcept>
#include <string>

#include "config/tls_protocols.h"

namespace pgcohere::net {

namespace ssl = boost::asio::ssl;
using protocol::SslMode;

namespace {

std::string openssl_reason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + openssl_reason()); }

// Versions outside the list are switched off one by one (a list may have a gap), and the
// minimum is lowered explicitly so that "all" really allows TLS 1.0 when the system's
// OpenSSL configuration would not.
void set_protocols(SSL_CTX* ctx, const std::string& key, const std::string& value) {
  config::TlsProtocols p;
  try {
    p = config::parse_tls_protocols(value);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(key + ": " + e.what());
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  long off = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3;
  if (!p.tls1_0) off |= SSL_OP_NO_TLSv1;
  if (!p.tls1_1) off |= SSL_OP_NO_TLSv1_1;
  if (!p.tls1_2) off |= SSL_OP_NO_TLSv1_2;
  if (!p.tls1_3) off |= SSL_OP_NO_TLSv1_3;
  SSL_CTX_set_options(ctx, off);
}

// PgBouncer's shortcuts: default, secure, fast and normal keep OpenSSL's (the system's)
// list; all is every cipher; anything else is an OpenSSL cipher string.
void set_ciphers(SSL_CTX* ctx, const std::string& key, const std::string& value, const std::string& exclude) {
  std::string list;
  if (value == "all") list = "ALL";
  else if (value != "default" && value != "secure" && value != "fast" && value != "normal") list = value;
  if (list.empty() && exclude.empty()) return;
  if (list.empty()) list = "DEFAULT";
  list += exclude;
  if (SSL_CTX_set_cipher_list(ctx, list.c_str()) != 1) fail(key + " '" + value + "'");
}

void set_tls13_ciphers(SSL_CTX* ctx, const std::string& key, const std::string& value) {
  if (!value.empty() && SSL_CTX_set_ciphersuites(ctx, value.c_str()) != 1) fail(key + " '" + value + "'");
}

void load_key_pair(SSL_CTX* ctx, const std::string& prefix, const std::string& key_file,
                   const std::string& cert_file) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1)
    fail(prefix + "_cert_file " + cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) fail(prefix + "_key_file " + key_file);
  if (SSL_CTX_check_private_key(ctx) != 1) fail(prefix + "_key_file " + key_file + " does not match " + cert_file);
}

std::shared_ptr<ssl::context> new_context(ssl::context::method method) {
  auto ctx = std::make_shared<ssl::context>(method);
  // Idle TLS connections give OpenSSL's record buffers back (there may be thousands).
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  // A peer that closes without close_notify ends the stream as an EOF does in plain text.
  SSL_CTX_set_options(ctx->native_handle(),
                      SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  return ctx;
}

}  // namespace

TlsSide make_client_side_tls(const config::DaemonSettings& d) {
  TlsSide side;
  side.mode = protocol::parse_ssl_mode(d.client_tls_sslmode).value_or(SslMode::disable);
  if (side.mode == SslMode::disable) return side;
  auto ctx = new_context(ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  set_protocols(c, "client_tls_protocols", d.client_tls_protocols);
  // "none" takes that key exchange out of the TLS 1.2 cipher list (TLS 1.3 always uses
  // ECDHE). OpenSSL 3 has no 1024-bit group to offer: dheparams = legacy gets the
  // automatic choice, as auto does.
  std::string exclude;
  if (d.client_tls_ecdhcurve == "none") exclude += ":!kECDHE";
  if (d.client_tls_dheparams == "none") exclude += ":!kDHE";
  set_ciphers(c, "client_tls_ciphers", d.client_tls_ciphers, exclude);
  set_tls13_ciphers(c, "client_tls13_ciphers", d.client_tls13_ciphers);
  if (d.client_tls_ecdhcurve != "auto" && d.client_tls_ecdhcurve != "none" &&
      SSL_CTX_set1_groups_list(c, d.client_tls_ecdhcurve.c_str()) != 1)
    fail("client_tls_ecdhcurve '" + d.client_tls_ecdhcurve + "'");
  SSL_CTX_set_dh_auto(c, d.client_tls_dheparams == "none" ? 0 : 1);
  load_key_pair(c, "client_tls", d.client_tls_key_file, d.client_tls_cert_file);
  if (!d.client_tls_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(c, d.client_tls_ca_file.c_str(), nullptr) != 1)
      fail("client_tls_ca_file " + d.client_tls_ca_file);
    // Tells clients which CAs their certificate may come from.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(d.client_tls_ca_file.c_str()))
      SSL_CTX_set_client_CA_list(c, names);
  }
  // allow, prefer and require take any client certificate without looking at it.
  SSL_CTX_set_verify(c,
                     protocol::client_certificate_required(side.mode)
                         ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                         : SSL_VERIFY_NONE,
                     nullptr);
  // Session resumption would need a session id context per pooler; full handshakes only.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(c, 0);
  side.context = std::move(ctx);
  return side;
}

TlsSide make_server_side_tls(const config::DaemonSettings& d) {
  TlsSide side;
  side.mode = protocol::parse_ssl_mode(d.server_tls_sslmode).value_or(SslMode::prefer);
  if (side.mode == SslMode::disable) return side;
  auto ctx = new_context(ssl::context::tls_client);
  SSL_CTX* c = ctx->native_handle();
  set_protocols(c, "server_tls_protocols", d.server_tls_protocols);
  set_ciphers(c, "server_tls_ciphers", d.server_tls_ciphers, "");
  set_tls13_ciphers(c, "server_tls13_ciphers", d.server_tls13_ciphers);
  if (!d.server_tls_cert_file.empty()) load_key_pair(c, "server_tls", d.server_tls_key_file, d.server_tls_cert_file);
  if (!d.server_tls_ca_file.empty() && SSL_CTX_load_verify_locations(c, d.server_tls_ca_file.c_str(), nullptr) != 1)
    fail("server_tls_ca_file " + d.server_tls_ca_file);
  // prefer and require encrypt without authenticating the server (as libpq's modes do).
  SSL_CTX_set_verify(c, protocol::server_certificate_checked(side.mode) ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  side.context = std::move(ctx);
  return side;
}

}  // namespace pgcohere::net
