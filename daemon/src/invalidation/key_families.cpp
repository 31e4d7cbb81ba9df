// Template shapes and the index prefixes of keys and patterns (see key_families.h).
#include "invalidation/key_families.h"

#include "contract/glob.h"

namespace pgcohere::invalidation {

namespace {
bool is_meta(char c) { return c == '*' || c == '?' || c == '[' || c == ']' || c == '\\'; }
}  // namespace

std::optional<std::string> KeyFamilies::shape_of(std::string_view t) {
  // Segments up to the first metacharacter: (literal text, placeholder) pairs.
  struct Segment {
    bool placeholder;
    std::string text;
  };
  std::vector<Segment> segments;
  std::string literal;
  bool glob = false;
  for (std::size_t i = 0; i < t.size() && !glob; ++i) {
    char c = t[i];
    if (c == '{') {
      std::size_t end = t.find('}', i + 1);
      if (end == std::string_view::npos || end == i + 1) return std::nullopt;  // the extension refuses these
      if (!literal.empty()) segments.push_back({false, std::move(literal)});
      literal.clear();
      segments.push_back({true, {}});
      i = end;
    } else if (c == '}') {
      return std::nullopt;
    } else if (is_meta(c)) {
      glob = true;
    } else {
      literal.push_back(c);
    }
  }
  // Without a metacharacter the template renders exact keys; a pattern of it appears only
  // for a NULL value or at a resync, and is scanned.
  if (!glob) return std::nullopt;
  if (!literal.empty()) segments.push_back({false, std::move(literal)});
  // End with literal text: a trailing placeholder would put every prefix of its value in
  // a set of its own.
  while (!segments.empty() && segments.back().placeholder) segments.pop_back();
  // A shape that starts with a placeholder would put nearly every key in some set.
  if (segments.empty() || segments.front().placeholder) return std::nullopt;
  std::string out;
  for (const auto& s : segments) out += s.placeholder ? std::string("*") : contract::glob_escape(s.text);
  return out;
}

bool KeyFamilies::assign(const std::vector<std::string>& templates) {
  std::set<std::string> shapes;
  for (const auto& t : templates)
    if (auto s = shape_of(t)) shapes.insert(std::move(*s));
  bool added = false;
  for (const auto& s : shapes)
    if (!shapes_.count(s)) added = true;
  shapes_ = std::move(shapes);
  parsed_.clear();
  for (const auto& glob : shapes_) {
    Shape s;
    s.glob = glob;
    s.head = contract::literal_prefix(glob);
    s.literal = contract::is_literal(glob);
    if (!s.literal) {
      // The literal text after the last '*' (shapes end with literal text, escaped).
      std::size_t star = glob.rfind('*');
      s.tail = contract::literal_prefix(std::string_view(glob).substr(star + 1));
    }
    parsed_.push_back(std::move(s));
  }
  return added;
}

std::optional<std::string> KeyFamilies::shortest(const Shape& s, std::string_view text) {
  if (text.compare(0, s.head.size(), s.head) != 0) return std::nullopt;
  if (s.literal) return s.head;
  for (std::size_t pos = text.find(s.tail, s.head.size()); pos != std::string_view::npos;
       pos = text.find(s.tail, pos + 1)) {
    std::string_view candidate = text.substr(0, pos + s.tail.size());
    if (contract::glob_match(s.glob, candidate)) return std::string(candidate);
  }
  return std::nullopt;
}

std::vector<std::string> KeyFamilies::prefixes_of(std::string_view key) const {
  std::vector<std::string> out;
  for (const auto& s : parsed_) {
    auto p = shortest(s, key);
    if (!p) continue;
    bool seen = false;
    for (const auto& o : out) seen = seen || o == *p;
    if (!seen) out.push_back(std::move(*p));
  }
  return out;
}

std::optional<std::string> KeyFamilies::prefix_for(std::string_view pattern) const {
  if (contract::is_literal(pattern)) return std::nullopt;  // an exact key, not a pattern
  std::string literal = contract::literal_prefix(pattern);
  std::optional<std::string> best;
  for (const auto& s : parsed_) {
    auto p = shortest(s, literal);
    if (p && (!best || p->size() > best->size())) best = std::move(p);
  }
  return best;
}

}  // namespace pgcohere::invalidation
