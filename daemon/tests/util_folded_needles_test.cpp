#include "util/folded_needles.h"

#include <gtest/gtest.h>

#include <random>

namespace pgcohere::util {
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

TEST(FoldedNeedles, OneByteNeedlesAreFoundToo) {
  FoldedNeedles n({"t", "users"});
  EXPECT_TRUE(n.found_in("SELECT 1 FROM T"));
  EXPECT_FALSE(n.found_in("VALUES (1)"));
}

// The skipping search against the plain definition, on random texts over a small alphabet
// (so that needles and near misses occur often) with random case.
TEST(FoldedNeedles, FindsExactlyWhatAByteByByteSearchFinds) {
  std::mt19937 rng(20261207);
  const std::string alphabet = "abcrsSEt_ &\xc3";
  auto random_string = [&](std::size_t lo, std::size_t hi) {
    std::string s(std::uniform_int_distribution<std::size_t>(lo, hi)(rng), ' ');
    for (auto& c : s) c = alphabet[std::uniform_int_distribution<std::size_t>(0, alphabet.size() - 1)(rng)];
    return s;
  };
  auto lower = [](std::string s) {
    for (auto& c : s) c = ascii_fold(c);
    return s;
  };
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::string> needles;
    for (int k = std::uniform_int_distribution<int>(1, 4)(rng); k > 0; --k) needles.push_back(lower(random_string(1, 6)));
    FoldedNeedles n(needles);
    for (int t = 0; t < 20; ++t) {
      std::string text = random_string(0, 40);
      std::string folded = lower(text);
      bool expected = false;
      for (const auto& needle : needles) expected = expected || folded.find(needle) != std::string::npos;
      ASSERT_EQ(n.found_in(text), expected) << "text '" << text << "', first needle '" << needles[0] << "'";
    }
  }
}

TEST(FoldedNeedles, AnEmptySetFindsNothingAndEmptyNeedlesAreIgnored) {
  EXPECT_FALSE(FoldedNeedles().found_in("anything"));
  FoldedNeedles only_empty({""});
  EXPECT_TRUE(only_empty.empty());
  EXPECT_FALSE(only_empty.found_in("anything"));
}

}  // namespace
}  // namespace pgcohere::util
