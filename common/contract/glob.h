// Redis glob patterns (KEYS / SCAN MATCH, Redis's util.c stringmatchlen) as both sides of
// the contract use them: the extension escapes column values into patterns and decides
// whether a declared family covers a key; the daemon matches keys against pending purges.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcohere::contract {

// * ? [ ] and the escape character itself.
bool is_glob_meta(char c);

// Escapes every metacharacter so that the result matches `text` and nothing else: data
// cannot widen a pattern (DESIGN.md, invariant 4).
std::string glob_escape(std::string_view text);

// Does `key` match `pattern`, as Redis decides it (case-sensitive)? Patterns that nest more
// than 1000 '*' do not match, as in Redis 7.
bool glob_match(std::string_view pattern, std::string_view key);

// The text every matching key starts with: the pattern up to its first unescaped
// metacharacter, with escapes removed. "msg:history:42:*" -> "msg:history:42:".
std::string literal_prefix(std::string_view pattern);

// True when the pattern has no unescaped metacharacter (it matches exactly one key).
bool is_literal(std::string_view pattern);

// ---- one pattern covering another (the extension's check of invalidate()'s keys)

// A pattern read into tokens, with Redis's reading of classes: `\` escapes, "a-z" is a
// range (either order, and "a-]" is a range up to ']', as Redis reads it), an unterminated
// class runs to the end of the pattern.
struct Glob {
  struct Token {
    enum Kind : unsigned char { Char, One, Many, Class } kind = Char;
    char c = 0;                                                   // Char
    bool negate = false;                                          // Class: [^...]
    std::vector<std::pair<unsigned char, unsigned char>> ranges;  // Class: inclusive
  };
  std::string source;  // the pattern as Redis gets it
  std::vector<Token> tokens;
  std::string prefix;  // the literal characters before the first other token
};
Glob parse_glob(std::string_view pattern);
Glob literal_glob(std::string_view key);  // an exact key: every character literal

// True if every key that `subject` matches is also matched by `cover`. Sound (never true
// for a subject that reaches outside the cover); a class in the subject is covered only by
// '?' or '*'.
bool glob_covers(const Glob& cover, const Glob& subject);
// Whether `cover` matches the key: glob_match() after a cheap test of the literal prefix.
bool glob_covers_key(const Glob& cover, std::string_view key);

}  // namespace pgcohere::contract
