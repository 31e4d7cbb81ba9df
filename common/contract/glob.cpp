// Redis glob patterns (see glob.h): the matcher is a port of Redis 7's stringmatchlen.
#include "contract/glob.h"

#include <algorithm>

namespace pgcohere::contract {
namespace {

// Redis's stringmatchlen_impl (case-sensitive). `skip_longer`: once a '*' has tried every
// rest of the key in vain, no outer '*' can do better by starting later (what Redis 7 does
// against exponential backtracking on patterns such as "*a*a*a*a*b").
bool match_from(std::string_view p, std::string_view s, int depth, bool& skip_longer) {
  if (depth > 1000) return false;  // abusive nesting: no match, like Redis 7
  while (!p.empty()) {
    switch (p[0]) {
      case '*': {
        while (p.size() > 1 && p[1] == '*') p.remove_prefix(1);
        if (p.size() == 1) return true;
        for (std::size_t i = 0; i <= s.size(); ++i) {
          if (match_from(p.substr(1), s.substr(i), depth + 1, skip_longer)) return true;
          if (skip_longer) return false;
        }
        skip_longer = true;
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

bool class_matches(const Glob::Token& t, unsigned char c) {
  bool in = false;
  for (auto [lo, hi] : t.ranges) in = in || (c >= lo && c <= hi);
  return in != t.negate;
}

}  // namespace

bool is_glob_meta(char c) { return c == '*' || c == '?' || c == '[' || c == ']' || c == '\\'; }

std::string glob_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 4);
  for (char c : text) {
    if (is_glob_meta(c)) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

bool glob_match(std::string_view pattern, std::string_view key) {
  bool skip_longer = false;
  return match_from(pattern, key, 0, skip_longer);
}

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
    if (pattern[i] == '*' || pattern[i] == '?' || pattern[i] == '[' || pattern[i] == '\\')
      return false;
  }
  return true;
}

Glob parse_glob(std::string_view pattern) {
  Glob g;
  g.source = std::string(pattern);
  const std::size_t n = pattern.size();
  for (std::size_t i = 0; i < n; ++i) {
    char c = pattern[i];
    Glob::Token t;
    switch (c) {
      case '*':
        if (!g.tokens.empty() && g.tokens.back().kind == Glob::Token::Many) continue;
        t.kind = Glob::Token::Many;
        break;
      case '?':
        t.kind = Glob::Token::One;
        break;
      case '[': {
        // The class loop of match_from(), item by item.
        t.kind = Glob::Token::Class;
        std::size_t j = i + 1;
        if (j < n && pattern[j] == '^') {
          t.negate = true;
          ++j;
        }
        while (j < n) {
          unsigned char a = pattern[j];
          if (a == '\\' && n - j >= 2) {
            a = pattern[j + 1];
            t.ranges.emplace_back(a, a);
            j += 2;
          } else if (a == ']') {
            break;
          } else if (n - j >= 3 && pattern[j + 1] == '-') {
            unsigned char b = pattern[j + 2];
            t.ranges.emplace_back(std::min(a, b), std::max(a, b));
            j += 3;
          } else {
            t.ranges.emplace_back(a, a);
            ++j;
          }
        }
        i = j;  // at the ']' (or the end of an unterminated class)
        break;
      }
      case '\\':
        if (i + 1 < n) c = pattern[++i];
        [[fallthrough]];
      default:
        t.kind = Glob::Token::Char;
        t.c = c;
    }
    g.tokens.push_back(std::move(t));
  }
  for (const auto& t : g.tokens) {
    if (t.kind != Glob::Token::Char) break;
    g.prefix.push_back(t.c);
  }
  return g;
}

Glob literal_glob(std::string_view key) {
  Glob g;
  g.source = glob_escape(key);
  g.tokens.reserve(key.size());
  for (char c : key) {
    Glob::Token t;
    t.c = c;
    g.tokens.push_back(std::move(t));
  }
  g.prefix = std::string(key);
  return g;
}

bool glob_covers(const Glob& cover, const Glob& subject) {
  if (subject.prefix.compare(0, cover.prefix.size(), cover.prefix) != 0)
    return false;  // cheap common case
  const auto& f = cover.tokens;
  const auto& s = subject.tokens;
  const std::size_t m = s.size();
  // next[j]: cover's tokens after i cover subject's tokens from j on. Bottom-up over i.
  std::vector<char> next(m + 1, 0), row(m + 1, 0);
  next[m] = 1;
  for (std::size_t i = f.size(); i-- > 0;) {
    const Glob::Token& ft = f[i];
    row[m] = ft.kind == Glob::Token::Many && next[m];
    for (std::size_t j = m; j-- > 0;) {
      const Glob::Token& st = s[j];
      switch (ft.kind) {
        case Glob::Token::Many:  // any run of the subject's tokens, its own '*' included
          row[j] = next[j] || row[j + 1];
          break;
        case Glob::Token::One:  // any one character: a literal, '?' or a class
          row[j] = st.kind != Glob::Token::Many && next[j + 1];
          break;
        case Glob::Token::Char:
          row[j] = st.kind == Glob::Token::Char && st.c == ft.c && next[j + 1];
          break;
        case Glob::Token::Class:  // only a literal is known to fall inside a class
          row[j] = st.kind == Glob::Token::Char && class_matches(ft, st.c) && next[j + 1];
          break;
      }
    }
    std::swap(next, row);
  }
  return next[0] != 0;
}

bool glob_covers_key(const Glob& cover, std::string_view key) {
  if (key.compare(0, cover.prefix.size(), cover.prefix) != 0) return false;
  return glob_match(cover.source, key);
}

}  // namespace pgcohere::contract
