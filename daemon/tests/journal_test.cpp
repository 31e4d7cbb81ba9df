// The purge journal: records survive reopening (a crash or restart), space is reclaimed in
// order, the ring wraps, and a full ring refuses records and remembers that it overflowed.
#include "invalidation/journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

using pgcohere::invalidation::Journal;
using pgcohere::invalidation::PurgeJob;

namespace {
class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("pgcohere-journal-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove(path_);
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::filesystem::path path_;
};

PurgeJob job(std::string key) {
  PurgeJob j;
  j.keys = {std::move(key)};
  return j;
}
}  // namespace

TEST_F(JournalTest, EncodeDecodeRoundTrip) {
  PurgeJob j;
  j.keys = {"a", "multi\nline\\"};
  j.patterns = {"msg:history:4\\*2:*"};
  j.tags = {"table:public.t"};
  auto rec = Journal::decode(Journal::encode("app\ndb", j));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->database, "app\ndb");
  EXPECT_EQ(rec->job.keys, j.keys);
  EXPECT_EQ(rec->job.patterns, j.patterns);
  EXPECT_EQ(rec->job.tags, j.tags);
  EXPECT_FALSE(Journal::decode("db\nx y\n"));
}

TEST_F(JournalTest, PendingRecordsSurviveReopen) {
  {
    Journal j(path_, 4096);
    auto a = j.append("db1", job("k1"));
    auto b = j.append("db1", job("k2"));
    auto c = j.append("db2", job("k3"));
    ASSERT_TRUE(a && b && c);
    j.complete(*b);  // done out of order: its space waits for a
    EXPECT_EQ(j.depth(), 3u);
    j.complete(*a);
    EXPECT_EQ(j.depth(), 1u);
  }  // "crash": nothing else is written
  Journal j(path_, 4096);
  auto pending = j.pending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].database, "db2");
  EXPECT_EQ(pending[0].job.keys[0], "k3");
  j.complete(pending[0].id);
  EXPECT_EQ(j.used_bytes(), 0u);
  Journal again(path_, 4096);
  EXPECT_TRUE(again.pending().empty());
}

TEST_F(JournalTest, RingWrapsAndKeepsOrderAcrossReopen) {
  std::uint64_t last = 0;
  {
    Journal j(path_, 256);
    // Fill, drain the front, append again so that records wrap around the ring's end.
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 100; ++i) {
      auto id = j.append("db", job("key:" + std::to_string(i)));
      while (!id) {  // full: let Redis finish the oldest, then retry
        ASSERT_FALSE(ids.empty());
        j.complete(ids.front());
        ids.erase(ids.begin());
        id = j.append("db", job("key:" + std::to_string(i)));
      }
      ASSERT_TRUE(id) << i;
      ids.push_back(*id);
      last = *id;
    }
    EXPECT_GT(ids.size(), 1u);
  }
  Journal j(path_, 256);
  auto pending = j.pending();
  ASSERT_FALSE(pending.empty());
  EXPECT_EQ(pending.back().id, last);
  EXPECT_EQ(pending.back().job.keys[0], "key:99");
  for (std::size_t i = 1; i < pending.size(); ++i) EXPECT_EQ(pending[i].id, pending[i - 1].id + 1);
}

TEST_F(JournalTest, FullRingRefusesAndRemembersOverflow) {
  {
    Journal j(path_, 128);
    int accepted = 0;
    while (j.append("db", job("0123456789012345678901234567890123456789"))) ++accepted;
    EXPECT_GT(accepted, 0);
    EXPECT_TRUE(j.overflowed());
  }
  Journal j(path_, 128);
  EXPECT_TRUE(j.overflowed());
  j.clear_overflow();
  j.clear();
  EXPECT_TRUE(j.append("db", job("k")));
  EXPECT_FALSE(j.overflowed());
}

TEST_F(JournalTest, GarbageFileIsReplaced) {
  {
    FILE* f = std::fopen(path_.c_str(), "w");
    std::fputs("not a journal at all, but long enough to hold a header.......", f);
    std::fclose(f);
  }
  Journal j(path_, 1024);
  EXPECT_TRUE(j.pending().empty());
  EXPECT_TRUE(j.append("db", job("k")));
}
