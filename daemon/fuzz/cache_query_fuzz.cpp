// libFuzzer target: SQL text reaches the cache from any client, so analyze() must never
// crash, hang or leak on it, and what it returns must hold together; resolve() and
// cache_key() then run on every result.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cache/catalog.h"
#include "cache/key.h"
#include "cache/query_analysis.h"
#include "cache/session_change.h"
#include "cache/search_path.h"
#include "cache/values.h"

using namespace pgcohere::cache;

namespace {

CatalogRow row(std::uint32_t relid, const char* nsp, const char* rel, std::vector<std::string> by,
               std::vector<std::string> types) {
  CatalogRow r;
  r.relid = relid;
  r.nspname = nsp;
  r.relname = rel;
  r.cached = true;
  r.by_columns = std::move(by);
  r.by_types = std::move(types);
  return r;
}

const Catalog& catalog() {
  static const Catalog c =
      build_catalog({row(1, "public", "t", {"id", "name"}, {"int8", "text"}), row(2, "public", "u", {"id"}, {"uuid"}),
                     row(3, "public", "messages", {"conversation_id"}, {"int4"}), row(4, "app", "t", {"k"}, {"int2"}),
                     row(5, "public", "users", {}, {})})
          .catalog;
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view sql(reinterpret_cast<const char*>(data), size);
  (void)changes_unseen_session_state(sql);  // any text: no crash, no leak
  Analysis a = analyze(sql);
  if (a.cacheable == !a.reason.empty()) std::abort();
  if (a.cacheable) {
    if (a.relations.empty() || a.hint == Hint::nocache) std::abort();
    for (const Equality& eq : a.equalities)
      if (eq.relation >= a.relations.size() || !a.relations[eq.relation].top_level_from) std::abort();
  } else if (!a.equalities.empty()) {
    std::abort();
  }

  // Parameters cut from the input itself, in both formats.
  Params params;
  for (int i = 0; i < a.max_param && i < 16; ++i) {
    std::size_t from = (static_cast<std::size_t>(i) * 7) % (size + 1);
    std::size_t len = i % 3 == 2 ? 8 : (size - from) % 17;
    if (i % 5 == 4)
      params.values.emplace_back(std::nullopt);
    else
      params.values.emplace_back(std::string(sql.substr(from, len)));
    params.formats.push_back(static_cast<std::int16_t>(i % 2));
  }
  // The cheap name filter may only rule out what resolve() would refuse anyway.
  bool may = catalog().may_name_cached_table(sql);
  for (std::string_view path : {std::string_view("\"$user\", public"), std::string_view("app, public"), sql}) {
    Session session;
    session.search_path = path;
    session.role = "app";
    Resolution r = resolve(a, catalog(), session, params, 1000);
    if (r.cacheable) {
      if (!may || !a.cacheable || r.relids.size() != a.relations.size() || r.tags.empty() || r.ttl_ms <= 0)
        std::abort();
    } else if (r.reason.empty()) {
      std::abort();
    }
  }

  (void)parse_search_path(sql);
  (void)canonical_uuid(sql);
  (void)canonical_integer(sql, ColumnType::int8);
  KeyParts k;
  k.query = sql;
  k.param_values = params.values;
  k.param_formats = params.formats;
  if (cache_key(k).size() != 64) std::abort();
  return 0;
}
