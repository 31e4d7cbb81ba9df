// Which index set a key belongs to, from the rules' key templates (pure, no I/O).
//
// A pattern purge renders a template such as "msg:history:{conversation_id}:*" into
// "msg:history:42:*". Every key it can match starts with the pattern's literal prefix
// "msg:history:42:", so the index keeps one Redis set per such prefix. A template's
// *shape* is the part a rendered pattern keeps literal: the template up to its first glob
// metacharacter, cut back to end with literal text ("msg:history:{conversation_id}:",
// as a glob "msg:history:*:"). A key joins, per shape, the set of its shortest prefix that
// the shape matches ("msg:history:42:7:0" -> "msg:history:42:"), so it is listed once per
// family. A pattern is answered by the set of the shortest prefix of its literal prefix
// that a shape matches: every key the pattern can match starts with that same shortest
// prefix, so it is in that set (a value containing the separator, "a:b" in
// "msg:history:a:b:*", makes the set "msg:history:a:", filtered by the pattern).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::invalidation {

class KeyFamilies {
 public:
  // The shape of a key template (or a declared key family, written the same way) as a
  // Redis glob: literal text escaped, each placeholder "*". None when the template renders
  // no pattern with a literal prefix worth indexing (no glob metacharacter: exact keys; or
  // an empty shape, which would index every key). Malformed templates: none.
  static std::optional<std::string> shape_of(std::string_view key_template);

  // Replaces the shapes with those of `templates`; returns true when a shape was added
  // (keys written before must then be indexed by a new SCAN pass).
  bool assign(const std::vector<std::string>& templates);
  std::size_t size() const { return shapes_.size(); }
  bool empty() const { return shapes_.empty(); }
  const std::set<std::string>& shapes() const { return shapes_; }

  // Per shape, the shortest prefix of `key` that it matches completely (no duplicates).
  std::vector<std::string> prefixes_of(std::string_view key) const;
  // The prefix whose set holds every key `pattern` can match, if the index can answer it
  // (the longest such prefix when several shapes can).
  std::optional<std::string> prefix_for(std::string_view pattern) const;

 private:
  struct Shape {
    std::string glob;
    std::string head;  // literal text every match starts with
    std::string tail;  // literal text every match ends with ("" when the shape is one literal)
    bool literal = false;
  };
  // The shortest prefix of `text` that `s` matches completely.
  static std::optional<std::string> shortest(const Shape& s, std::string_view text);

  std::set<std::string> shapes_;
  std::vector<Shape> parsed_;
};

}  // namespace pgcohere::invalidation
