// Port of Redis's stringmatchlen (case-sensitive), iterative over '*' with backtracking.
#include "redis/glob.h"

namespace pgcohere::redis {
namespace {

bool match_from(std::string_view p, std::string_view s, int depth) {
  if (depth > 1000) return false;  // pathological nesting: treat as no match, like Redis 7.2
  while (!p.empty()) {
    switch (p[0]) {
      case '*': {
        while (p.size() > 1 && p[1] == '*') p.remove_prefix(1);
        if (p.size() == 1) return true;
        for (std::size_t i = 0; i <= s.size(); ++i)
          if (match_from(p.substr(1), s.substr(i), depth + 1)) return true;
        return false;
      }
      case '?':
        if (s.empty()) return false;
        s.remove_prefix(1);
        p.remove_prefix(1);
        break;
      case '[': {
        if (s.empty()) return false;
        p.remove_prefix(1);
        bool negate = !p.empty() && p[0] == '^';
        if (negate) p.remove_prefix(1);
        bool matched = false;
        while (true) {
          if (p.empty()) break;  // unterminated class: Redis treats the end as ']'
          if (p[0] == '\\' && p.size() >= 2) {
            p.remove_prefix(1);
            if (p[0] == s[0]) matched = true;
          } else if (p[0] == ']') {
            break;
          } else if (p.size() >= 3 && p[1] == '-') {
            unsigned char a = p[0], b = p[2], c = s[0];
            if (a > b) std::swap(a, b);
            if (c >= a && c <= b) matched = true;
            p.remove_prefix(2);
          } else if (p[0] == s[0]) {
            matched = true;
          }
          p.remove_prefix(1);
        }
        if (!p.empty()) p.remove_prefix(1);  // the ']'
        if (negate) matched = !matched;
        if (!matched) return false;
        s.remove_prefix(1);
        break;
      }
      case '\\':
        if (p.size() >= 2) p.remove_prefix(1);
        [[fallthrough]];
      default:
        if (s.empty() || p[0] != s[0]) return false;
        s.remove_prefix(1);
        p.remove_prefix(1);
    }
  }
  return s.empty();
}

bool is_meta(char c) { return c == '*' || c == '?' || c == '[' || c == ']' || c == '\\'; }

}  // namespace

bool glob_match(std::string_view pattern, std::string_view key) { return match_from(pattern, key, 0); }

std::string literal_prefix(std::string_view pattern) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      out.push_back(pattern[++i]);
      continue;
    }
    if (c == '*' || c == '?' || c == '[' || c == '\\') break;
    out.push_back(c);
  }
  return out;
}

bool is_literal(std::string_view pattern) {
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      ++i;
      continue;
    }
    if (pattern[i] == '*' || pattern[i] == '?' || pattern[i] == '[' || pattern[i] == '\\') return false;
  }
  return true;
}

std::string glob_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (is_meta(c)) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace pgcohere::redis
