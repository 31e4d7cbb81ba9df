// Redis glob patterns (common/contract/glob.h): matching as Redis does, escaping that never
// widens, and one pattern covering another.
#include "contract/glob.h"

#include <gtest/gtest.h>

using namespace pgcohere::contract;

TEST(RedisGlob, MatchesLikeRedis) {
  EXPECT_TRUE(glob_match("msg:history:42:*", "msg:history:42:10:0"));
  EXPECT_FALSE(glob_match("msg:history:42:*", "msg:history:421:10:0"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "ac"));
  EXPECT_TRUE(glob_match("h[ae]llo", "hallo"));
  EXPECT_FALSE(glob_match("h[^e]llo", "hello"));
  EXPECT_TRUE(glob_match("h[a-c]llo", "hbllo"));
  EXPECT_TRUE(glob_match("x:\\*:*", "x:*:1"));
  EXPECT_FALSE(glob_match("x:\\*:*", "x:y:1"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("**a", "ba"));
}

TEST(RedisGlob, LiteralPrefixAndEscape) {
  EXPECT_EQ(literal_prefix("msg:history:42:*"), "msg:history:42:");
  EXPECT_EQ(literal_prefix("a\\*b*"), "a*b");
  EXPECT_TRUE(is_literal("a\\*b"));
  EXPECT_FALSE(is_literal("a*b"));
  EXPECT_EQ(glob_escape("a*b?"), "a\\*b\\?");
  EXPECT_TRUE(glob_match(glob_escape("we[ir]d*") + "*", "we[ir]d*tail"));
}

namespace {
bool covers_key(const char* family, const char* key) {
  bool general = glob_covers(parse_glob(family), literal_glob(key));
  EXPECT_EQ(general, glob_covers_key(parse_glob(family), key)) << family << " vs " << key;
  return general;
}
bool covers_pattern(const char* family, const char* pattern) {
  return glob_covers(parse_glob(family), parse_glob(pattern));
}
}  // namespace

TEST(Glob, KeysMatchAsRedisDoes) {
  EXPECT_TRUE(covers_key("user:profile:*", "user:profile:42"));
  EXPECT_TRUE(covers_key("user:profile:*", "user:profile:"));
  EXPECT_FALSE(covers_key("user:profile:*", "user:profil"));
  EXPECT_FALSE(covers_key("user:profile:*", "user:avatar:42"));
  EXPECT_TRUE(covers_key("msg:history:*:*", "msg:history:7:10:0"));
  EXPECT_FALSE(covers_key("msg:history:*:*", "msg:history:7"));
  EXPECT_TRUE(covers_key("config:global", "config:global"));
  EXPECT_FALSE(covers_key("config:global", "config:global2"));
  EXPECT_TRUE(covers_key("a?c", "abc"));
  EXPECT_FALSE(covers_key("a?c", "ac"));
  EXPECT_TRUE(covers_key("v[0-9]:*", "v7:x"));
  EXPECT_FALSE(covers_key("v[0-9]:*", "vx:x"));
  EXPECT_TRUE(covers_key("v[^0-9]:*", "vx:x"));
  EXPECT_FALSE(covers_key("v[^0-9]:*", "v1:x"));
  EXPECT_TRUE(covers_key("v[ab\\]]", "v]"));
  // escaped metacharacters are literal; a key's own '*' is just a character
  EXPECT_TRUE(covers_key("feed:\\*", "feed:*"));
  EXPECT_FALSE(covers_key("feed:\\*", "feed:x"));
  EXPECT_TRUE(covers_key("*", "anything"));
  EXPECT_TRUE(covers_key("*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"));
  EXPECT_FALSE(covers_key("*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

TEST(Glob, PatternCoverIsSound) {
  EXPECT_TRUE(covers_pattern("feed:*", "feed:*"));
  EXPECT_TRUE(covers_pattern("feed:*", "feed:42:*"));
  EXPECT_TRUE(covers_pattern("feed:*", "feed:?"));
  EXPECT_TRUE(covers_pattern("feed:*", "feed:[ab]"));
  EXPECT_TRUE(covers_pattern("*:x", "a*b:x"));
  EXPECT_TRUE(covers_pattern("feed:?", "feed:[ab]"));
  EXPECT_FALSE(covers_pattern("feed:?", "feed:*"));    // feed:ab is not covered
  EXPECT_FALSE(covers_pattern("feed:*:x", "feed:*"));  // feed:y is not covered
  EXPECT_FALSE(covers_pattern("feed:[ab]", "feed:?"));
  EXPECT_FALSE(covers_pattern("feed:a*", "feed:*"));
  EXPECT_FALSE(covers_pattern("user:*", "us*"));
  EXPECT_TRUE(covers_pattern("feed:\\*", "feed:\\*"));
}

TEST(Glob, ClassesReadAsRedisReadsThem) {
  // "a-]" is a range up to ']' and the class goes on to the next ']' (Redis's reading)
  EXPECT_TRUE(glob_match("[a-]x]", "x"));
  EXPECT_TRUE(glob_match("[a-]x]", "]"));
  EXPECT_TRUE(covers_key("[a-]x]", "x"));
  EXPECT_FALSE(covers_key("[a-]x]", "-"));
  // ranges in either order, an escaped ']' inside, an unterminated class to the end
  EXPECT_TRUE(covers_key("[z-a]", "m"));
  EXPECT_TRUE(covers_key("[\\]]", "]"));
  EXPECT_TRUE(covers_key("v[abc", "vb"));
  EXPECT_FALSE(covers_key("v[abc", "vd"));
  // an empty class matches nothing, its negation any one character
  EXPECT_FALSE(covers_key("a[]", "a]"));
  EXPECT_TRUE(covers_key("a[^]", "ab"));
  for (const char* p : {"[a-]x]", "[z-a]", "[\\]]", "v[abc", "a[]", "a[^]", "x[^a-c]y"})
    for (const char* k : {"x", "]", "-", "m", "vb", "vd", "a]", "ab", "xdy", "xby"})
      EXPECT_EQ(glob_covers(parse_glob(p), literal_glob(k)), glob_match(p, k)) << p << " vs " << k;
}

TEST(Glob, AnEscapedValueMatchesOnlyItself) {
  // Column values with every metacharacter: escaped, they never widen a pattern.
  const std::string values[] = {"*", "?", "[a-z]", "\\", "a\\*b", "]", "[^x]", "x*y?z", ""};
  const std::string keys[] = {"*",  "?", "a", "[a-z]", "\\",    "a\\*b", "a*b",
                              "ab", "]", "x", "",      "x*y?z", "xAyBz", "[^x]"};
  for (const auto& v : values) {
    EXPECT_TRUE(is_literal(glob_escape(v))) << v;
    EXPECT_EQ(literal_prefix(glob_escape(v)), v);
    for (const auto& k : keys) {
      EXPECT_EQ(glob_match(glob_escape(v), k), k == v) << v << " vs " << k;
      EXPECT_EQ(glob_match("t:" + glob_escape(v) + ":*", "t:" + k + ":1"), k == v)
          << v << " vs " << k;
    }
  }
}

TEST(Glob, ManyStarsDoNotBacktrackExponentially) {
  std::string pattern;
  for (int i = 0; i < 40; ++i) pattern += "*a";
  pattern += "*b";
  std::string key(4000, 'a');
  EXPECT_FALSE(glob_match(pattern, key));  // returns at once, as Redis 7 does
  EXPECT_TRUE(glob_match(pattern, key + "b"));
}
