// Cache hints in SQL comments, found with libpg_query's scanner (comment tokens only, so a
// hint-like string inside a literal or an identifier is not a hint).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cache/query_analysis.h"

namespace pgcohere::cache {

struct HintScan {
  Hint hint = Hint::none;
  std::optional<std::int64_t> ttl_seconds;
  std::string error;  // a comment that starts with "pgcohere:" but is not a valid hint
};

// Longest TTL a hint may ask for (a year): larger values are almost certainly typos.
inline constexpr std::int64_t kMaxHintTtlSeconds = 365LL * 24 * 3600;

// `sql` must not contain NUL bytes. Recognised comments (C or SQL style), whitespace
// around the words is free:
//   /* pgcohere:nocache */   /* pgcohere:cache */   /* pgcohere:cache ttl=30 */
// nocache wins over cache when both appear.
HintScan scan_hints(const std::string& sql);

}  // namespace pgcohere::cache
