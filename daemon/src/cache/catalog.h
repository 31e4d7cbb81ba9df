// The cache policies as the daemon sees them (rows of pgcohere.cache_catalog()), and
// resolve(): the relations of an analysed statement resolved to OIDs the way PostgreSQL
// would in this session, the final cacheability verdict, the TTL and the entry's tags.
// Pure: no database access, the caller passes the catalog rows and the session's settings.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/query_analysis.h"
#include "util/folded_needles.h"

namespace pgcohere::cache {

// One row of pgcohere.cache_catalog() (docs/cache.md, "Design").
struct CatalogRow {
  std::uint32_t relid = 0;
  std::string nspname;
  std::string relname;
  bool cached = false;
  std::optional<std::int64_t> ttl_ms;  // nullopt: the daemon's default TTL
  std::vector<std::string> by_columns;
  std::vector<std::string> by_types;  // int2, int4, int8, text, varchar, uuid or other
  bool rls = false;
  bool temp = false;
};

struct CatalogResult;

class Catalog {
 public:
  Catalog() = default;  // empty: nothing is cacheable

  const CatalogRow* find(std::string_view schema, std::string_view name) const;
  // Some temporary relation (of any session) has this name.
  bool has_temp(std::string_view name) const { return temp_names_.count(name) != 0; }
  std::size_t size() const { return rows_.size(); }
  const std::vector<CatalogRow>& rows() const { return rows_; }

  // False when no cache-enabled table's name occurs in `sql` (ASCII case-insensitively):
  // then no session can cache the statement, and the caller may skip analyze() (which
  // costs a full parse). A negative filter only; true decides nothing.
  bool may_name_cached_table(std::string_view sql) const;

 private:
  friend CatalogResult build_catalog(std::vector<CatalogRow> rows);
  std::vector<CatalogRow> rows_;
  // (schema, name) -> index in rows_, searchable with string_views.
  struct NameLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::pair<std::string_view, std::string_view>(a.first, a.second) <
             std::pair<std::string_view, std::string_view>(b.first, b.second);
    }
  };
  std::map<std::pair<std::string, std::string>, std::size_t, NameLess> by_name_;
  std::set<std::string, std::less<>> temp_names_;
  util::FoldedNeedles cached_names_;             // cache-enabled names, ASCII-lowercased
  bool filter_unsound_ = false;            // some name the filter cannot find reliably
};

struct CatalogResult {
  Catalog catalog;    // empty when error is set
  std::string error;  // rows that contradict each other or the contract
  bool ok() const { return error.empty(); }
};
CatalogResult build_catalog(std::vector<CatalogRow> rows);

// Bind's parameters as they came from the client.
struct Params {
  std::vector<std::optional<std::string>> values;  // nullopt: SQL NULL; bytes as sent
  std::vector<std::int16_t> formats;               // as in Bind: none = all text, one = all, else one each
  std::vector<std::uint32_t> types;                // Parse's type OIDs; missing or 0: inferred by the server
  std::int16_t format(std::size_t i) const;
  std::uint32_t type(std::size_t i) const { return i < types.size() ? types[i] : 0; }
};

// The session settings that change how the statement is read. Encodings by the names
// PostgreSQL reports (ParameterStatus).
struct Session {
  std::string_view search_path;  // as SHOW search_path prints it, e.g. `"$user", public`
  std::string_view role;         // replaces $user (the role in the cache key)
  std::string_view client_encoding = "UTF8";
  std::string_view server_encoding = "UTF8";
  bool standard_conforming_strings = true;
};

struct Resolution {
  bool cacheable = false;
  std::string reason;                 // why not (empty when cacheable)
  std::vector<std::uint32_t> relids;  // one per Analysis::relations entry
  std::vector<std::string> tags;      // sorted, unique: tbl:<oid>, row:<oid>:<col>=<value>, all:<oid>
  std::int64_t ttl_ms = 0;
};

// default_ttl_ms: the TTL of a table whose policy has none ([cache] default_ttl).
Resolution resolve(const Analysis& analysis, const Catalog& catalog, const Session& session, const Params& params,
                   std::int64_t default_ttl_ms);
// The simple-protocol form (no parameters, UTF8, standard_conforming_strings on).
Resolution resolve(const Analysis& analysis, const Catalog& catalog, std::string_view search_path,
                   std::string_view role, std::int64_t default_ttl_ms);

}  // namespace pgcohere::cache
