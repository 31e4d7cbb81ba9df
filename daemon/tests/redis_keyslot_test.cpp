// Cluster hash slots, checked against values from the Redis Cluster specification and
// `CLUSTER KEYSLOT`.
#include "redis/keyslot.h"

#include <gtest/gtest.h>

using namespace pgcohere::redis;

TEST(RedisKeyslot, Crc16Xmodem) { EXPECT_EQ(crc16("123456789"), 0x31C3); }

TEST(RedisKeyslot, SlotsAndHashTags) {
  EXPECT_EQ(keyslot("foo"), 12182);
  EXPECT_EQ(keyslot("123456789"), 12739);
  EXPECT_EQ(keyslot("{user1000}.following"), keyslot("{user1000}.followers"));
  EXPECT_EQ(keyslot("{user1000}.following"), keyslot("user1000"));
  EXPECT_EQ(keyslot("foo{}{bar}"), static_cast<int>(crc16("foo{}{bar}") & 16383));  // empty tag: whole key
  EXPECT_EQ(keyslot("foo{{bar}}zap"), keyslot("{bar"));
  EXPECT_EQ(keyslot("foo{bar}{zap}"), keyslot("bar"));
  EXPECT_EQ(keyslot(""), 0);
}
