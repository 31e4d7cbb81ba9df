// Redis glob matching (the semantics of KEYS/SCAN MATCH, util.c stringmatchlen), used to match
// one SCAN pass against many pending patterns at once.
#pragma once

#include <string>
#include <string_view>

namespace pgcohere::redis {

bool glob_match(std::string_view pattern, std::string_view key);

// The text every matching key starts with: the pattern up to its first unescaped
// metacharacter, with escapes removed. "msg:history:42:*" -> "msg:history:42:".
std::string literal_prefix(std::string_view pattern);

// True when the pattern has no unescaped metacharacter (it matches exactly one key).
bool is_literal(std::string_view pattern);

// Escapes glob metacharacters so that `text` matches only itself (used to build a MATCH
// argument from a common literal prefix).
std::string glob_escape(std::string_view text);

}  // namespace pgcohere::redis
