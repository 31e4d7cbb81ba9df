// build_catalog() and resolve(). The rules are PostgreSQL's name lookup (namespace.c) and
// the contract of docs/cache.md; every doubt resolves to "not cacheable" or to the table
// tag, never to a narrower tag.
#include "cache/catalog.h"

#include <algorithm>

#include "cache/search_path.h"
#include "util/folded_needles.h"
#include "cache/values.h"

namespace pgcohere::cache {
namespace {

bool ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = util::ascii_fold(c);
  return out;
}

// "utf-8", "UTF8" and "utf_8" name the same encoding.
std::string encoding_key(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '-' || c == '_') continue;
    out += (c >= 'a' && c <= 'z') ? static_cast<char>(c - ('a' - 'A')) : c;
  }
  return out;
}

// Client-only encodings whose multibyte characters can contain the bytes of ASCII quotes
// or backslashes: libpg_query (which reads the text as UTF-8) could split the statement
// differently from the server, which converts it first.
bool ascii_unsafe(std::string_view encoding) {
  static constexpr std::string_view kUnsafe[] = {"SJIS",  "SHIFTJIS2004", "BIG5",   "GBK",    "UHC",   "GB18030",
                                                 "JOHAB", "WIN932",       "WIN936", "WIN949", "WIN950"};
  std::string k = encoding_key(encoding);
  return std::find(std::begin(kUnsafe), std::end(kUnsafe), k) != std::end(kUnsafe);
}

bool both_utf8(const Session& s) {
  return encoding_key(s.client_encoding) == "UTF8" && encoding_key(s.server_encoding) == "UTF8";
}

// U&"..." identifiers spell names with escapes: text with one is always analysed. '&' is
// rare in SQL, so memchr finds the candidates.
bool has_unicode_identifier(std::string_view sql) {
  for (auto at = sql.find('&'); at != std::string_view::npos; at = sql.find('&', at + 1))
    if (at > 0 && util::ascii_fold(sql[at - 1]) == 'u') return true;
  return false;
}

bool temp_schema(std::string_view s) { return s == "pg_temp" || s.substr(0, 8) == "pg_temp_"; }

std::string qualified(const RelationRef& r) { return r.schema.empty() ? r.name : r.schema + "." + r.name; }

bool is_integer(ColumnType t) { return t == ColumnType::int2 || t == ColumnType::int4 || t == ColumnType::int8; }
bool is_text(ColumnType t) { return t == ColumnType::text || t == ColumnType::varchar; }

// The exact text output of the equality's value for a column of type t, if we can know it.
std::optional<std::string> render(const Equality& eq, ColumnType t, const Params& params, const Session& session) {
  auto text_value = [&](std::string v) -> std::optional<std::string> {
    // The published tag holds the server's bytes; the client's are the same only for ASCII
    // or when both sides are UTF-8.
    if (!ascii(v) && !both_utf8(session)) return std::nullopt;
    return v;
  };
  // A cast value must be cast to the column's kind of type; an integer cast to a narrower
  // type must fit it (else the statement fails).
  std::optional<ColumnType> cast;
  if (!eq.cast.empty()) {
    cast = column_type(eq.cast);
    if (!(is_integer(*cast) && is_integer(t)) && !(is_text(*cast) && is_text(t)) &&
        !(*cast == ColumnType::uuid && t == ColumnType::uuid))
      return std::nullopt;
  }
  auto integer_value = [&](std::string_view text) -> std::optional<std::string> {
    if (cast && !canonical_integer(text, *cast)) return std::nullopt;
    return canonical_integer(text, t);
  };
  switch (eq.kind) {
    case Equality::Kind::integer:
      if (is_integer(t)) return integer_value(eq.text);
      if (cast && is_text(t)) return canonical_integer(eq.text, ColumnType::int8);  // 42::text is '42'
      return std::nullopt;
    case Equality::Kind::string:  // read by the input function of the cast or the column type
      if (is_integer(t)) return integer_value(eq.text);
      if (is_text(t)) return text_value(eq.text);
      if (t == ColumnType::uuid) return canonical_uuid(eq.text);
      return std::nullopt;
    case Equality::Kind::param:
      break;
  }
  if (eq.param < 1 || static_cast<std::size_t>(eq.param) > params.values.size()) return std::nullopt;
  std::size_t i = static_cast<std::size_t>(eq.param - 1);
  const std::optional<std::string>& value = params.values[i];
  if (!value) return std::nullopt;  // col = NULL matches nothing: the table tag is used
  std::uint32_t declared = params.type(i);
  if (cast) {
    // `$1::int8` gives an unspecified $1 that type; a declared other type would be converted.
    std::uint32_t cast_oid = *cast == ColumnType::int2   ? oid::int2
                             : *cast == ColumnType::int4 ? oid::int4
                             : *cast == ColumnType::int8 ? oid::int8
                             : *cast == ColumnType::text ? oid::text
                             : *cast == ColumnType::uuid ? oid::uuid
                                                         : oid::varchar;
    if (declared != oid::unspecified && declared != cast_oid) return std::nullopt;
    if (!eq.param_used_once) return std::nullopt;
    declared = cast_oid;
  }
  // An unspecified type is inferred from the first use of $n; only when this equality is
  // its only use is that the column's type.
  if (declared == oid::unspecified && !eq.param_used_once) return std::nullopt;
  std::int16_t format = params.format(i);
  if (format != 0 && format != 1) return std::nullopt;
  if (is_integer(t)) {
    if (declared != oid::unspecified && declared != oid::int2 && declared != oid::int4 && declared != oid::int8)
      return std::nullopt;
    return format == 0 ? canonical_integer(*value, t) : binary_integer(*value, declared, t);
  }
  if (is_text(t)) {
    if (declared != oid::unspecified && declared != oid::text && declared != oid::varchar) return std::nullopt;
    return text_value(*value);  // textrecv and textin both take the bytes as they are
  }
  if (t == ColumnType::uuid) {
    if (declared != oid::unspecified && declared != oid::uuid) return std::nullopt;
    return format == 0 ? canonical_uuid(*value) : binary_uuid(*value);
  }
  return std::nullopt;
}

// The first usable row equality of relation occurrence i, in the order of the policy's
// `by` columns: any one of them selects every row the entry depends on.
std::optional<std::string> row_tag(const Analysis& a, std::size_t i, const CatalogRow& row, const Params& params,
                                   const Session& session) {
  if (!a.relations[i].top_level_from) return std::nullopt;
  for (std::size_t k = 0; k < row.by_columns.size(); ++k) {
    ColumnType t = column_type(row.by_types[k]);
    for (const Equality& eq : a.equalities) {
      if (eq.relation != i || eq.column != row.by_columns[k]) continue;
      if (auto v = render(eq, t, params, session))
        return "row:" + std::to_string(row.relid) + ":" + row.by_columns[k] + "=" + *v;
    }
  }
  return std::nullopt;
}

Resolution refuse(std::string reason) {
  Resolution r;
  r.reason = std::move(reason);
  return r;
}

}  // namespace

std::int16_t Params::format(std::size_t i) const {
  if (formats.empty()) return 0;
  if (formats.size() == 1) return formats[0];
  return i < formats.size() ? formats[i] : -1;
}

const CatalogRow* Catalog::find(std::string_view schema, std::string_view name) const {
  auto it = by_name_.find(std::make_pair(schema, name));
  return it == by_name_.end() ? nullptr : &rows_[it->second];
}

CatalogResult build_catalog(std::vector<CatalogRow> rows) {
  CatalogResult out;
  Catalog& c = out.catalog;
  c.rows_ = std::move(rows);
  std::vector<std::string> cached_names;  // ASCII-lowercased, unique
  for (std::size_t i = 0; i < c.rows_.size(); ++i) {
    const CatalogRow& r = c.rows_[i];
    std::string where = "cache_catalog row " + std::to_string(i + 1) + " (" + r.nspname + "." + r.relname + "): ";
    if (r.relid == 0)
      out.error = where + "relid is 0";
    else if (r.nspname.empty() || r.relname.empty())
      out.error = where + "empty schema or relation name";
    else if (r.by_columns.size() != r.by_types.size())
      out.error = where + "by_columns and by_types differ in length";
    else if (!c.by_name_.emplace(std::make_pair(r.nspname, r.relname), i).second)
      out.error = where + "listed twice";
    if (!out.error.empty()) {
      out.catalog = Catalog();
      return out;
    }
    if (r.temp) c.temp_names_.insert(r.relname);
    if (r.cached) {
      std::string folded = ascii_lower(r.relname);
      // A double quote in a name is written doubled in the text.
      if (r.relname.find('"') != std::string::npos) c.filter_unsound_ = true;
      if (std::find(cached_names.begin(), cached_names.end(), folded) == cached_names.end())
        cached_names.push_back(std::move(folded));
    }
  }
  c.cached_names_ = util::FoldedNeedles(std::move(cached_names));
  return out;
}

bool Catalog::may_name_cached_table(std::string_view sql) const {
  if (cached_names_.empty()) return false;
  if (filter_unsound_) return true;
  return cached_names_.found_in(sql) || has_unicode_identifier(sql);
}

Resolution resolve(const Analysis& a, const Catalog& catalog, const Session& session, const Params& params,
                   std::int64_t default_ttl_ms) {
  if (!a.cacheable) return refuse(a.reason);
  if (!session.standard_conforming_strings)
    return refuse("standard_conforming_strings is off (the statement was parsed with it on)");
  if (ascii_unsafe(session.client_encoding))
    return refuse("client_encoding " + std::string(session.client_encoding) + " is not ASCII-safe");
  if (a.non_ascii && !both_utf8(session))
    return refuse("non-ASCII query text needs client_encoding and server_encoding UTF8");
  if (static_cast<std::size_t>(a.max_param) > params.values.size())
    return refuse("the statement uses $" + std::to_string(a.max_param) + " but " +
                  std::to_string(params.values.size()) + " parameters were bound");
  for (std::size_t i = 0; i < params.values.size(); ++i)
    if (params.values[i] && params.format(i) == 0 && has_clock_word(*params.values[i]))
      return refuse("parameter $" + std::to_string(i + 1) + " could be read as the current time ('now', 'today', ...)");

  auto path = parse_search_path(session.search_path);
  if (!path) return refuse("search_path cannot be parsed: " + std::string(session.search_path));
  if (path->non_ascii_unquoted && encoding_key(session.server_encoding) != "UTF8")
    return refuse("search_path has non-ASCII unquoted names and server_encoding is not UTF8");
  if (a.names_operators) {
    // Builtin functions, operators, types and collations are found first only while
    // pg_catalog comes first; a schema before it could shadow one of them.
    auto catalog_at = std::find(path->schemas.begin(), path->schemas.end(), "pg_catalog");
    if (catalog_at != path->schemas.end())
      for (auto it = path->schemas.begin(); it != catalog_at; ++it)
        if (*it != "pg_temp")  // functions and operators are never looked up there
          return refuse("search_path lists " + *it + " before pg_catalog");
  }
  std::vector<std::string> lookup = effective_path(*path, session.role);

  Resolution r;
  std::int64_t ttl = -1;
  for (std::size_t i = 0; i < a.relations.size(); ++i) {
    const RelationRef& rel = a.relations[i];
    const CatalogRow* row = nullptr;
    if (!rel.schema.empty()) {
      if (temp_schema(rel.schema)) return refuse(qualified(rel) + " is a temporary table");
      row = catalog.find(rel.schema, rel.name);
    } else {
      if (catalog.has_temp(rel.name)) return refuse("a temporary table named " + rel.name + " exists");
      for (const std::string& s : lookup)
        if ((row = catalog.find(s, rel.name))) break;
    }
    if (!row) return refuse(qualified(rel) + " is not a cache-enabled table");
    std::string name = row->nspname + "." + row->relname;
    if (row->nspname == "pg_catalog" || row->nspname == "information_schema")
      return refuse(name + " is a system catalog");
    if (row->temp) return refuse(name + " is a temporary table");
    if (row->rls) return refuse(name + " has row-level security");
    if (!row->cached) return refuse(name + " is not cache-enabled");
    std::int64_t t = row->ttl_ms.value_or(default_ttl_ms);
    ttl = ttl < 0 ? t : std::min(ttl, t);
    r.relids.push_back(row->relid);
    if (auto tag = row_tag(a, i, *row, params, session)) {
      r.tags.push_back(*tag);
      r.tags.push_back("all:" + std::to_string(row->relid));
    } else {
      r.tags.push_back("tbl:" + std::to_string(row->relid));
    }
  }
  if (a.hint_ttl_seconds) ttl = *a.hint_ttl_seconds * 1000;
  if (ttl <= 0) return refuse("the TTL is not positive (" + std::to_string(ttl) + " ms)");
  std::sort(r.tags.begin(), r.tags.end());
  r.tags.erase(std::unique(r.tags.begin(), r.tags.end()), r.tags.end());
  r.ttl_ms = ttl;
  r.cacheable = true;
  return r;
}

Resolution resolve(const Analysis& analysis, const Catalog& catalog, std::string_view search_path,
                   std::string_view role, std::int64_t default_ttl_ms) {
  Session s;
  s.search_path = search_path;
  s.role = role;
  return resolve(analysis, catalog, s, Params{}, default_ttl_ms);
}

}  // namespace pgcohere::cache
