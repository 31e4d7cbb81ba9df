// The TLS protocol versions a *_tls_protocols setting allows (PgBouncer's syntax).
#pragma once

#include <string>

namespace pgcohere::config {

struct TlsProtocols {
  bool tls1_0 = false, tls1_1 = false, tls1_2 = false, tls1_3 = false;
  bool operator==(const TlsProtocols&) const = default;
};

// Names separated by commas, colons or spaces: tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3 and the
// shortcuts all (every version), secure and default (tlsv1.2, tlsv1.3), legacy (all); a
// leading '!' or '-' removes a version. Throws std::invalid_argument for an unknown name
// or a list that allows nothing.
TlsProtocols parse_tls_protocols(const std::string& text);

}  // namespace pgcohere::config
