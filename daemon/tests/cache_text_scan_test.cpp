#include "cache/text_scan.h"

#include <gtest/gtest.h>

namespace pgcohere::cache {
namespace {

TEST(FoldedNeedles, FindsAnyNeedleAnywhereWithAsciiLettersFolded) {
  FoldedNeedles n({"search_path", "role", "reset"});
  EXPECT_TRUE(n.found_in("SET SEARCH_PATH = x"));
  EXPECT_TRUE(n.found_in("set role bob"));
  EXPECT_TRUE(n.found_in("RESET"));           // the whole text
  EXPECT_TRUE(n.found_in("x role"));          // at the very end
  EXPECT_TRUE(n.found_in("SeArCh_PaTh"));
  EXPECT_FALSE(n.found_in("SELECT abalance FROM pgbench_accounts WHERE aid = $1"));
  EXPECT_FALSE(n.found_in("rol"));            // a prefix of a needle at the end is no match
  EXPECT_FALSE(n.found_in(""));
}

TEST(FoldedNeedles, NeedlesSharingAFirstLetterAreAllTried) {
  FoldedNeedles n({"set_config", "search_path", "sx"});
  EXPECT_TRUE(n.found_in("select search_path"));
  EXPECT_TRUE(n.found_in("select set_config('a','b',false)"));
  EXPECT_TRUE(n.found_in("ssx"));
  EXPECT_FALSE(n.found_in("select s, se, sea, set"));
}

TEST(FoldedNeedles, OnlyAsciiLettersAreFolded) {
  FoldedNeedles n({"\xc3\xa9t\xc3\xa9", "u&"});
  EXPECT_TRUE(n.found_in("SELECT 1 FROM \xc3\xa9t\xc3\xa9"));
  EXPECT_FALSE(n.found_in("SELECT 1 FROM \xc3\x89T\xc3\x89"));  // É is not folded: PostgreSQL folds only ASCII
  EXPECT_TRUE(n.found_in("SELECT * FROM U&\"\\0075sers\""));
  EXPECT_FALSE(n.found_in("SELECT u & 1"));
}

TEST(FoldedNeedles, AnEmptySetFindsNothingAndEmptyNeedlesAreIgnored) {
  EXPECT_FALSE(FoldedNeedles().found_in("anything"));
  FoldedNeedles only_empty({""});
  EXPECT_TRUE(only_empty.empty());
  EXPECT_FALSE(only_empty.found_in("anything"));
}

}  // namespace
}  // namespace pgcohere::cache
