// scan_hints(): comment tokens from pg_query_scan, then a strict parse of their text.
#include "cache/hints.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <charconv>
#include <memory>
#include <string_view>

namespace pgcohere::cache {
namespace {

struct ScanResultDeleter {
  void operator()(PgQuery__ScanResult* r) const { pg_query__scan_result__free_unpacked(r, nullptr); }
};

constexpr std::string_view kPrefix = "pgcohere:";

bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// The comment's text without its delimiters.
std::string_view comment_body(std::string_view token, bool c_style) {
  if (c_style) {
    if (token.size() >= 4 && token.substr(0, 2) == "/*" && token.substr(token.size() - 2) == "*/")
      return token.substr(2, token.size() - 4);
    return {};  // an unterminated comment is a syntax error anyway
  }
  return token.substr(0, 2) == "--" ? token.substr(2) : std::string_view{};
}

// Applies one hint comment body (already starting with the prefix) to `out`.
void apply(std::string_view body, HintScan& out) {
  std::string_view rest = trim(body.substr(kPrefix.size()));
  auto bad = [&] {
    if (out.error.empty()) out.error = "malformed cache hint: " + std::string(trim(body));
  };
  if (rest == "nocache") {
    out.hint = Hint::nocache;
    return;
  }
  if (rest.substr(0, 5) != "cache" || (rest.size() > 5 && !space(rest[5]))) return bad();
  rest = trim(rest.substr(5));
  std::optional<std::int64_t> ttl;
  if (!rest.empty()) {
    if (rest.substr(0, 4) != "ttl=") return bad();
    std::string_view digits = rest.substr(4);
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || digits[0] == '-' || v < 1 ||
        v > kMaxHintTtlSeconds)
      return bad();
    ttl = v;
  }
  if (out.hint == Hint::nocache) return;
  out.hint = Hint::cache;
  if (ttl) out.ttl_seconds = out.ttl_seconds ? std::min(*out.ttl_seconds, *ttl) : *ttl;
}

}  // namespace

HintScan scan_hints(const std::string& sql) {
  HintScan out;
  // Cheap pre-filter: a hint needs its prefix somewhere in the text. The decision itself
  // is taken from the scanner's tokens below.
  if (sql.find(kPrefix) == std::string::npos) return out;
  PgQueryScanResult r = pg_query_scan(sql.c_str());
  std::unique_ptr<PgQuery__ScanResult, ScanResultDeleter> scan;
  if (!r.error)
    scan.reset(pg_query__scan_result__unpack(nullptr, r.pbuf.len, reinterpret_cast<const std::uint8_t*>(r.pbuf.data)));
  pg_query_free_scan_result(r);
  if (!scan) return out;  // the parse reports the syntax error
  std::string_view text(sql);
  for (std::size_t i = 0; i < scan->n_tokens; ++i) {
    const PgQuery__ScanToken* t = scan->tokens[i];
    bool c_style = t->token == PG_QUERY__TOKEN__C_COMMENT;
    if (!c_style && t->token != PG_QUERY__TOKEN__SQL_COMMENT) continue;
    if (t->start < 0 || t->end < t->start || static_cast<std::size_t>(t->end) > text.size()) continue;
    std::string_view body = trim(comment_body(text.substr(t->start, t->end - t->start), c_style));
    if (body.substr(0, kPrefix.size()) == kPrefix) apply(body, out);
  }
  if (out.hint == Hint::nocache) out.ttl_seconds.reset();
  return out;
}

}  // namespace pgcohere::cache
