// The effective configuration, masked (see effective.h).
#include "config/effective.h"

#include <algorithm>
#include <sstream>
#include <utility>
#include <vector>

namespace pgcohere::config {

namespace {
// A libpq-style value, quoted where parse_conn_params needs quotes to read it back.
std::string conn_value(const std::string& v) {
  if (!v.empty() && v.find_first_of(" \t'\\") == std::string::npos) return v;
  std::string out = "'";
  for (char ch : v) {
    if (ch == '\'' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "'";
}

void entries(std::ostringstream& out, const char* section, const std::vector<ConnEntry>& list) {
  out << "[" << section << "]\n";
  for (const ConnEntry& e : list) {
    out << e.name << " =";
    for (const auto& [k, v] : e.params)
      out << ' ' << k << '=' << (k.find("password") != std::string::npos ? kMasked : conn_value(v));
    out << '\n';
  }
}
}  // namespace

std::string mask_url_password(const std::string& url) {
  auto scheme = url.find("://");
  auto start = scheme == std::string::npos ? 0 : scheme + 3;
  auto at = url.find('@', start);
  if (at == std::string::npos) return url;
  // redis://:pw@host and redis://user:pw@host carry a password after the colon;
  // redis://pw@host (no colon) is read as a password alone by Redis clients.
  auto colon = url.find(':', start);
  auto from = colon != std::string::npos && colon < at ? colon + 1 : start;
  return url.substr(0, from) + kMasked + url.substr(at);
}

std::string effective_config(const Config& config) {
  std::ostringstream out;
  entries(out, "databases", config.databases);
  if (!config.users.empty()) entries(out, "users", config.users);
  if (!config.peers.empty()) entries(out, "peers", config.peers);
  // One block per section, in the order sections first appear in the schema.
  std::vector<std::pair<std::string, std::string>> sections;
  for (const Setting& st : list_settings(config)) {
    auto it = std::find_if(sections.begin(), sections.end(), [&](const auto& s) { return s.first == st.section; });
    if (it == sections.end()) it = sections.insert(sections.end(), {st.section, ""});
    std::string value = st.value;
    if (st.key == "url")
      value = mask_url_password(value);
    else if (st.secret)
      value = kMasked;
    it->second += st.key + " = " + value + "\n";
  }
  for (const auto& [name, lines] : sections) out << "[" << name << "]\n" << lines;
  return out.str();
}

}  // namespace pgcohere::config
