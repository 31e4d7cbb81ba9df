// pgcohere_cache_explain: prints the cache decision for one statement (stdin) against a
// catalog given as TSV, so that tests can compare it with what PostgreSQL itself resolves.
// Usage: pgcohere_cache_explain CATALOG.tsv SEARCH_PATH ROLE [DEFAULT_TTL_MS]
// TSV columns: relid nspname relname cached(t/f) ttl_ms("" = none) by_columns by_types rls temp
// (lists comma-separated). Output: one `name value...` line each for cacheable, reason,
// relids, tags and ttl_ms.
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "cache/catalog.h"
#include "cache/query_analysis.h"

using namespace pgcohere::cache;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (s.back() == sep) out.emplace_back();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: pgcohere_cache_explain CATALOG.tsv SEARCH_PATH ROLE [DEFAULT_TTL_MS] < query\n";
    return 2;
  }
  std::ifstream tsv(argv[1]);
  if (!tsv) {
    std::cerr << "cannot read " << argv[1] << "\n";
    return 2;
  }
  std::vector<CatalogRow> rows;
  for (std::string line; std::getline(tsv, line);) {
    if (line.empty()) continue;
    auto f = split(line, '\t');
    if (f.size() != 9) {
      std::cerr << "bad catalog line: " << line << "\n";
      return 2;
    }
    CatalogRow r;
    r.relid = static_cast<std::uint32_t>(std::stoul(f[0]));
    r.nspname = f[1];
    r.relname = f[2];
    r.cached = f[3] == "t";
    if (!f[4].empty()) r.ttl_ms = std::stoll(f[4]);
    r.by_columns = split(f[5], ',');
    r.by_types = split(f[6], ',');
    r.rls = f[7] == "t";
    r.temp = f[8] == "t";
    rows.push_back(std::move(r));
  }
  auto built = build_catalog(std::move(rows));
  if (!built.ok()) {
    std::cerr << built.error << "\n";
    return 2;
  }
  std::string sql((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  Session s;
  s.search_path = argv[2];
  s.role = argv[3];
  std::int64_t default_ttl = argc > 4 ? std::stoll(argv[4]) : 60000;
  Resolution r = resolve(analyze(sql), built.catalog, s, Params{}, default_ttl);
  std::cout << "cacheable " << (r.cacheable ? 1 : 0) << "\nreason " << r.reason << "\nrelids";
  for (auto id : r.relids) std::cout << ' ' << id;
  std::cout << "\ntags";
  for (const auto& t : r.tags) std::cout << ' ' << t;
  std::cout << "\nttl_ms " << r.ttl_ms << "\n";
  return 0;
}
