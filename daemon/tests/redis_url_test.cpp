// Redis URLs of the [redis] section.
#include "redis/url.h"

#include <gtest/gtest.h>

using namespace pgcohere::redis;

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
