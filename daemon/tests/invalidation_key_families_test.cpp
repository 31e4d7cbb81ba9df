// Template shapes and index prefixes: which set a key joins, which patterns the sets answer.
#include "invalidation/key_families.h"

#include <gtest/gtest.h>

using pgcohere::invalidation::KeyFamilies;

TEST(KeyFamilies, AShapeIsTheTemplateUpToItsFirstGlobEndingInLiteralText) {
  EXPECT_EQ(KeyFamilies::shape_of("msg:history:{conversation_id}:*"), "msg:history:*:");
  EXPECT_EQ(KeyFamilies::shape_of("user:profile:*"), "user:profile:");
  EXPECT_EQ(KeyFamilies::shape_of("feed:{a}:{b}:page?"), "feed:*:*:page");
  EXPECT_EQ(KeyFamilies::shape_of("t:{id}*"), "t:");  // a trailing placeholder is cut back
}

TEST(KeyFamilies, TemplatesThatRenderNoUsefulPatternHaveNoShape) {
  EXPECT_FALSE(KeyFamilies::shape_of("conv:metadata:{id}"));  // exact keys
  EXPECT_FALSE(KeyFamilies::shape_of("*:suffix"));            // would index every key
  EXPECT_FALSE(KeyFamilies::shape_of("{tenant}:*"));
  EXPECT_FALSE(KeyFamilies::shape_of("broken:{id:*"));
}

TEST(KeyFamilies, AKeyJoinsTheSetOfItsRenderedPrefix) {
  KeyFamilies f;
  EXPECT_TRUE(f.assign({"msg:history:{conversation_id}:*", "conv:metadata:{id}"}));
  EXPECT_EQ(f.size(), 1u);
  EXPECT_EQ(f.prefixes_of("msg:history:42:7:0"), std::vector<std::string>{"msg:history:42:"});
  EXPECT_TRUE(f.prefixes_of("conv:metadata:42").empty());
  EXPECT_TRUE(f.prefixes_of("msg:count:42").empty());
  EXPECT_TRUE(f.prefixes_of("msg:history:42").empty());  // no ':' after the value
}

TEST(KeyFamilies, AValueContainingTheSeparatorIsFoundThroughTheShorterPrefix) {
  KeyFamilies f;
  f.assign({"msg:history:{c}:*"});
  // The key of conversation "a:b" is listed once, under the shortest prefix.
  EXPECT_EQ(f.prefixes_of("msg:history:a:b:c"), std::vector<std::string>{"msg:history:a:"});
  // Its pattern reads that set and keeps the members it matches.
  EXPECT_EQ(f.prefix_for("msg:history:a:b:*"), "msg:history:a:");
}

TEST(KeyFamilies, APatternIsAnsweredByTheSetOfItsLiteralPrefix) {
  KeyFamilies f;
  f.assign({"msg:history:{c}:*", "user:profile:*"});
  EXPECT_EQ(f.prefix_for("msg:history:42:*"), "msg:history:42:");
  EXPECT_EQ(f.prefix_for("msg:history:42:*:page"), "msg:history:42:");
  EXPECT_EQ(f.prefix_for("msg:history:4\\*2:*"), "msg:history:4*2:");  // an escaped value
  EXPECT_EQ(f.prefix_for("user:profile:*"), "user:profile:");
  EXPECT_EQ(f.prefix_for("user:profile:4*"), "user:profile:");
  // The coarse pattern (resync) and unrelated patterns are scanned.
  EXPECT_FALSE(f.prefix_for("msg:history:*:*"));
  EXPECT_FALSE(f.prefix_for("msg:hist*"));
  EXPECT_FALSE(f.prefix_for("other:*"));
  EXPECT_FALSE(f.prefix_for("msg:history:42:"));  // an exact key
}

TEST(KeyFamilies, AssignTellsWhetherAShapeWasAdded) {
  KeyFamilies f;
  EXPECT_TRUE(f.assign({"a:{x}:*"}));
  EXPECT_FALSE(f.assign({"a:{y}:*", "plain:{id}"}));  // same shape, one without
  EXPECT_FALSE(f.assign({}));
  EXPECT_TRUE(f.empty());
  EXPECT_TRUE(f.assign({"a:{x}:*"}));
}
