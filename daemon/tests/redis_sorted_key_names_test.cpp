// The pattern index's lookup: only the literal prefix's range is visited.
#include "redis/sorted_key_names.h"

#include <gtest/gtest.h>

using pgcohere::redis::SortedKeyNames;

TEST(SortedKeyNames, MatchVisitsOnlyThePrefixRange) {
  SortedKeyNames s;
  for (int conv = 0; conv < 100; ++conv)
    for (int i = 0; i < 10; ++i) s.insert("msg:history:" + std::to_string(conv) + ":" + std::to_string(i));
  s.insert("msg:count:42");
  std::size_t visited = 0;
  auto keys = s.match("msg:history:42:*", &visited);
  EXPECT_EQ(keys.size(), 10u);
  EXPECT_EQ(visited, 10u);
  keys = s.match("msg:history:4?:1", &visited);
  EXPECT_EQ(keys.size(), 10u);  // 40..49
  EXPECT_EQ(visited, 110u);     // "msg:history:4" covers 4 and 40..49
  EXPECT_TRUE(s.match("nothing:*").empty());
  s.erase("msg:history:42:3");
  EXPECT_EQ(s.match("msg:history:42:*").size(), 9u);
}

TEST(SortedKeyNames, EscapedMetacharactersAreLiteral) {
  SortedKeyNames s;
  s.insert("a*b:1");
  s.insert("axb:1");
  auto keys = s.match("a\\*b:*");
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0], "a*b:1");
}
