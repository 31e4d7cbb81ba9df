// Parser of `redis://host:port/db`.
#include "redis/url.h"

#include <charconv>

namespace pgcohere::redis {
namespace {
bool to_int(std::string_view s, int& out, int max) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out >= 0 && out <= max;
}
}  // namespace

std::optional<Endpoint> parse_url(std::string_view url, std::string* error) {
  auto bad = [&](const char* why) -> std::optional<Endpoint> {
    if (error) *error = why;
    return std::nullopt;
  };
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) return bad("url must start with redis://");
  url.remove_prefix(scheme.size());
  Endpoint ep;
  std::size_t slash = url.find('/');
  std::string_view hostport = url.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = url.substr(slash + 1);
    if (!db.empty() && !to_int(db, ep.db, 1 << 20)) return bad("bad database number");
  }
  if (hostport.find('@') != std::string_view::npos) return bad("credentials in url are not supported");
  std::size_t colon = hostport.rfind(':');
  if (colon != std::string_view::npos) {
    if (!to_int(hostport.substr(colon + 1), ep.port, 65535) || ep.port == 0) return bad("bad port");
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty()) return bad("missing host");
  ep.host = std::string(hostport);
  return ep;
}

}  // namespace pgcohere::redis
