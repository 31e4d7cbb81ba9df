// search_path as PostgreSQL shows it (`"$user", public`), split the way the server's
// SplitIdentifierString() does: quoted names keep case (`""` is a quote), unquoted ones
// are downcased, both are truncated to 63 bytes.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::cache {

struct SearchPath {
  std::vector<std::string> schemas;  // as listed ("$user" stays "$user")
  bool non_ascii_unquoted = false;   // downcasing those depends on the server encoding
};

// nullopt: a syntax error (PostgreSQL would not have accepted the value).
std::optional<SearchPath> parse_search_path(std::string_view value);

// The schemas a relation name is looked up in, in order, as namespace.c does it:
// pg_catalog first unless listed, `$user` replaced by the role. The temporary schema is
// left out: callers treat any temporary relation of the name as a match (it would come
// first unless pg_temp is listed later, and we cannot tell which session owns it).
std::vector<std::string> effective_path(const SearchPath& path, std::string_view role);

}  // namespace pgcohere::cache
