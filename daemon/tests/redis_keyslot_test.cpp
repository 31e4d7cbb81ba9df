// Cluster hash slots, checked against values from the Redis Cluster specification and
// `CLUSTER KEYSLOT`.
#include "redis/keyslot.h"

#include <gtest/gtest.h>

#include "contract/glob.h"

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

// Every key a pattern can match starts with its literal prefix: the slot is known when that
// prefix holds a complete tag, read as keyslot() reads a key.
static std::optional<int> pattern_slot(std::string_view pattern) {
  return prefix_keyslot(pgcohere::contract::literal_prefix(pattern));
}

TEST(RedisKeyslot, APatternWhosePrefixHoldsACompleteHashTagHasOneSlot) {
  EXPECT_EQ(pattern_slot("msg:history:{42}:*"), keyslot("42"));
  EXPECT_EQ(pattern_slot("{42}*"), keyslot("42"));
  EXPECT_EQ(pattern_slot("a{42}b{7}:*"), keyslot("42"));  // only the first tag counts
  EXPECT_EQ(pattern_slot("foo{{bar}}:*"), keyslot("{bar"));  // first '{', first '}' after it
  EXPECT_EQ(pattern_slot("msg:{42}"), keyslot("42"));        // an exact key
}

TEST(RedisKeyslot, APatternWithoutACompleteHashTagInItsPrefixHasNoSlot) {
  EXPECT_EQ(pattern_slot("msg:history:42:*"), std::nullopt);  // a key may carry a tag later
  EXPECT_EQ(pattern_slot("msg:history:{42*"), std::nullopt);  // "}" not in the prefix
  EXPECT_EQ(pattern_slot("msg:{4*}:x"), std::nullopt);
  EXPECT_EQ(pattern_slot("msg:{}{42}:*"), std::nullopt);  // empty first tag: the whole key is hashed
  EXPECT_EQ(pattern_slot("msg:*:{42}:*"), std::nullopt);  // the tag is after a wildcard
  EXPECT_EQ(pattern_slot("msg:?{42}:*"), std::nullopt);
  EXPECT_EQ(pattern_slot("msg:[ab]{42}:*"), std::nullopt);
  EXPECT_EQ(pattern_slot("}{42}*"), keyslot("42"));  // a '}' before the first '{' is text
  EXPECT_EQ(prefix_hash_tag("msg:{42}:"), "42");
  EXPECT_EQ(prefix_hash_tag("msg:{42"), std::nullopt);
}

TEST(RedisKeyslot, EscapedGlobCharactersInAPatternAreLiteralTextOfItsKeys) {
  EXPECT_EQ(pattern_slot("msg:\\{42\\}:*"), keyslot("42"));   // escaped braces are braces
  EXPECT_EQ(pattern_slot("msg:{4\\*2}:*"), keyslot("4*2"));     // an escaped '*' is in the tag
  EXPECT_EQ(pattern_slot("msg:{a\\[b}:*"), keyslot("a[b"));
  EXPECT_EQ(pattern_slot("msg:{4\\"), std::nullopt);            // a trailing backslash ends the prefix
}
