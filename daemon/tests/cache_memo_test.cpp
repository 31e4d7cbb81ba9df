// AnalysisMemo: the same answers as analyze(), from memory for repeated texts, bounded.
#include <gtest/gtest.h>

#include "cache/analysis_memo.h"

using namespace pgcohere::cache;

TEST(CacheAnalysisMemo, RepeatedTextsAreAnsweredFromMemoryWithTheSameResult) {
  AnalysisMemo memo(8);
  auto a = memo.analyze("SELECT * FROM t WHERE id = 1");
  auto b = memo.analyze("SELECT * FROM t WHERE id = 1");
  EXPECT_EQ(a, b);  // the same object
  EXPECT_EQ(memo.hits(), 1u);
  EXPECT_EQ(memo.misses(), 1u);
  EXPECT_TRUE(a->cacheable);
  ASSERT_EQ(a->equalities.size(), 1u);
  auto c = memo.analyze("SELECT * FROM t WHERE id = 2");  // another text is another entry
  EXPECT_NE(a, c);
  EXPECT_EQ(c->equalities[0].text, "2");
  auto refused = memo.analyze("SELECT now() FROM t");
  EXPECT_FALSE(refused->cacheable);
  EXPECT_EQ(memo.analyze("SELECT now() FROM t"), refused);
}

TEST(CacheAnalysisMemo, TheLeastRecentlyUsedTextIsEvictedFirst) {
  AnalysisMemo memo(2);
  auto first = memo.analyze("SELECT * FROM a");
  memo.analyze("SELECT * FROM b");
  memo.analyze("SELECT * FROM a");  // a is now the most recent
  memo.analyze("SELECT * FROM c");  // evicts b
  EXPECT_EQ(memo.size(), 2u);
  std::uint64_t misses = memo.misses();
  EXPECT_EQ(memo.analyze("SELECT * FROM a"), first);
  EXPECT_EQ(memo.misses(), misses);
  memo.analyze("SELECT * FROM b");
  EXPECT_EQ(memo.misses(), misses + 1);
  // An evicted result stays valid for whoever holds it.
  EXPECT_EQ(first->relations[0].name, "a");
}

TEST(CacheAnalysisMemo, LongTextsAndZeroCapacityAreNotKept) {
  AnalysisMemo memo(4, 30);
  memo.analyze("SELECT * FROM a_table_with_a_long_name WHERE x = 1");
  EXPECT_EQ(memo.size(), 0u);
  AnalysisMemo none(0);
  none.analyze("SELECT * FROM a");
  none.analyze("SELECT * FROM a");
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.misses(), 2u);
}
