// TLS protocol lists (see tls_protocols.h).
#include "config/tls_protocols.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace pgcohere::config {

TlsProtocols parse_tls_protocols(const std::string& text) {
  TlsProtocols out;
  std::string item;
  auto apply = [&](std::string name) {
    if (name.empty()) return;
    bool remove = name[0] == '!' || name[0] == '-';
    if (remove) name.erase(0, 1);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    bool on = !remove;
    if (name == "tlsv1.0" || name == "tlsv1") {
      out.tls1_0 = on;
    } else if (name == "tlsv1.1") {
      out.tls1_1 = on;
    } else if (name == "tlsv1.2") {
      out.tls1_2 = on;
    } else if (name == "tlsv1.3") {
      out.tls1_3 = on;
    } else if (name == "all" || name == "legacy") {
      out.tls1_0 = out.tls1_1 = out.tls1_2 = out.tls1_3 = on;
    } else if (name == "secure" || name == "default") {
      out.tls1_2 = out.tls1_3 = on;
    } else {
      throw std::invalid_argument("unknown TLS protocol '" + name +
                                  "' (tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, all, secure, legacy, default)");
    }
  };
  for (char c : text) {
    if (c == ',' || c == ':' || std::isspace(static_cast<unsigned char>(c))) {
      apply(item);
      item.clear();
    } else {
      item += c;
    }
  }
  apply(item);
  if (!(out.tls1_0 || out.tls1_1 || out.tls1_2 || out.tls1_3))
    throw std::invalid_argument("no TLS protocol version is allowed by '" + text + "'");
  return out;
}

}  // namespace pgcohere::config
