// Redis glob semantics used to match one SCAN pass against many patterns.
#include "redis/glob.h"

#include <gtest/gtest.h>

using namespace pgcohere::redis;

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

#include "redis/url.h"

TEST(RedisUrl, Parses) {
  auto ep = parse_url("redis://127.0.0.1:22001/3");
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->host, "127.0.0.1");
  EXPECT_EQ(ep->port, 22001);
  EXPECT_EQ(ep->db, 3);
  EXPECT_EQ(parse_url("redis://localhost")->port, 6379);
  std::string err;
  EXPECT_FALSE(parse_url("http://x", &err));
  EXPECT_FALSE(parse_url("redis://x:0", &err));
  EXPECT_FALSE(parse_url("redis://x:1/a", &err));
}
