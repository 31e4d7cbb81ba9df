// parse_search_path(), effective_path(): a port of varlena.c SplitIdentifierString() and
// of the relevant part of namespace.c recomputeNamespacePath().
#include "cache/search_path.h"

#include <algorithm>

namespace pgcohere::cache {
namespace {

constexpr std::size_t kNameMax = 63;  // NAMEDATALEN - 1

bool scanner_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// Truncates to 63 bytes without splitting a UTF-8 character (pg_mbcliplen).
void truncate_identifier(std::string& s) {
  if (s.size() <= kNameMax) return;
  std::size_t n = kNameMax;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
}

}  // namespace

std::optional<SearchPath> parse_search_path(std::string_view v) {
  SearchPath out;
  std::size_t i = 0;
  while (i < v.size() && scanner_space(v[i])) ++i;
  if (i == v.size()) return out;
  for (;;) {
    std::string name;
    if (v[i] == '"') {
      ++i;
      for (;;) {
        if (i >= v.size()) return std::nullopt;  // mismatched quotes
        if (v[i] == '"') {
          if (i + 1 < v.size() && v[i + 1] == '"') {
            name += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        name += v[i++];
      }
    } else {
      std::size_t start = i;
      while (i < v.size() && v[i] != ',' && !scanner_space(v[i])) {
        char c = v[i++];
        if (static_cast<unsigned char>(c) >= 0x80) out.non_ascii_unquoted = true;
        name += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
      }
      if (i == start) return std::nullopt;  // empty unquoted name
    }
    truncate_identifier(name);
    out.schemas.push_back(std::move(name));
    while (i < v.size() && scanner_space(v[i])) ++i;
    if (i == v.size()) return out;
    if (v[i] != ',') return std::nullopt;
    ++i;
    while (i < v.size() && scanner_space(v[i])) ++i;
    if (i == v.size()) return std::nullopt;  // trailing comma: an empty name
  }
}

std::vector<std::string> effective_path(const SearchPath& path, std::string_view role) {
  std::vector<std::string> out;
  if (std::find(path.schemas.begin(), path.schemas.end(), "pg_catalog") == path.schemas.end())
    out.emplace_back("pg_catalog");
  for (const std::string& s : path.schemas) {
    if (s == "pg_temp") continue;
    std::string name = s == "$user" ? std::string(role) : s;
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
  }
  return out;
}

}  // namespace pgcohere::cache
