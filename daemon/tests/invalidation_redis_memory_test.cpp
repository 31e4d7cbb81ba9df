// Unit tests of the INFO memory parser behind pgcohere_redis_used_memory_bytes.
#include <gtest/gtest.h>

#include "invalidation/redis_memory.h"

using pgcohere::invalidation::parse_redis_memory;

TEST(RedisMemory, ReadsUsedMemoryAndMaxmemoryFromAnInfoReply) {
  auto m = parse_redis_memory(
      "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nused_memory_rss:4194304\r\n"
      "maxmemory:8388608\r\nmaxmemory_human:8.00M\r\nmaxmemory_policy:allkeys-lru\r\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->used, 1048576u);
  EXPECT_EQ(m->maximum, 8388608u);
}

TEST(RedisMemory, NoMaxmemoryLineMeansNoLimit) {
  auto m = parse_redis_memory("used_memory_rss:99\nused_memory:42\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->used, 42u);
  EXPECT_EQ(m->maximum, 0u);
}

TEST(RedisMemory, RepliesWithoutANumericUsedMemoryAreRefused) {
  EXPECT_FALSE(parse_redis_memory(""));
  EXPECT_FALSE(parse_redis_memory("ERR unknown section"));
  EXPECT_FALSE(parse_redis_memory("used_memory_rss:5\r\n"));
  EXPECT_FALSE(parse_redis_memory("used_memory:12x\r\n"));
}
