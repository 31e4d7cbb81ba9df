// Decides from libpg_query's parse tree (never from the text) whether a statement may be
// answered from the cache, which relations it reads and which row equalities it fixes.
// Pure: SQL text in, a plain struct out (docs/cache.md, "What is cached and what never is").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::cache {

// One relation as written in the query (every occurrence is listed: a table read twice
// appears twice, because each occurrence gets its own tag).
struct RelationRef {
  std::string schema;  // empty when unqualified (resolved through search_path)
  std::string name;
  std::string alias;            // empty when none
  bool top_level_from = false;  // in the FROM list (or an unaliased JOIN tree) of the top-level SELECT
  friend bool operator==(const RelationRef&, const RelationRef&) = default;
};

// `col = <const>` or `col = $n` in the top-level AND of the top-level SELECT's WHERE.
struct Equality {
  enum class Kind { integer, string, param };
  std::size_t relation = 0;  // index into Analysis::relations (always a top-level FROM item)
  std::string column;
  Kind kind = Kind::integer;
  std::string text;              // integer: the literal's digits (with sign); string: the value
  int param = 0;                 // param: the 1-based parameter number
  bool param_used_once = false;  // param: $n appears nowhere else (its type is the column's)
  // The value was cast (`'...'::uuid`, `$1::int8`): int2, int4, int8, text, varchar or
  // uuid, without a type modifier; empty when not cast.
  std::string cast;
  friend bool operator==(const Equality&, const Equality&) = default;
};

enum class Hint { none, cache, nocache };

struct Analysis {
  bool cacheable = false;
  std::string reason;  // why not cacheable (empty when cacheable)
  std::vector<RelationRef> relations;
  std::vector<Equality> equalities;
  Hint hint = Hint::none;
  std::optional<std::int64_t> hint_ttl_seconds;  // `/* pgcohere:cache ttl=30 */`
  // Facts that depend on the session and so are checked by resolve():
  bool non_ascii = false;        // some byte >= 0x80 in the text (encodings must agree)
  bool names_operators = false;  // uses a function, operator or type name (search_path decides them)
  int max_param = 0;             // highest $n referenced
};

// Longer texts are not analysed (not cacheable): libpg_query's recursion has no bound.
inline constexpr std::size_t kMaxAnalyzedBytes = 16384;

// Thread-compatible (libpg_query keeps per-thread state; call pg_query_exit() when a thread
// that called this ends). The text is parsed as PostgreSQL does with
// standard_conforming_strings on and an ASCII-safe client encoding; resolve() refuses
// sessions where that is not so.
Analysis analyze(std::string_view sql);

// True when `text`, read by PostgreSQL's date/time input, could mean the current time
// ('now', 'today', 'tomorrow', 'yesterday', also inside 'today 10:00'). A literal or a
// text parameter holding such a word is not cacheable.
bool has_clock_word(std::string_view text);

}  // namespace pgcohere::cache
