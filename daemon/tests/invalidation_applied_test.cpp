// The read-your-writes watermark: it promises a position only once every commit up to it
// is purged, through completed purges in seq order or a resync that began after them.
#include <gtest/gtest.h>

#include "invalidation/applied_watermark.h"

using pgcohere::invalidation::AppliedWatermark;
using Applied = AppliedWatermark::Applied;

namespace {

constexpr std::uint64_t E = 1700000000000000;

// A watermark whose session's connect resync is done, as after a normal start.
AppliedWatermark connected() {
  AppliedWatermark w;
  w.new_session();
  w.resync_completed(w.resync_started());
  return w;
}

std::optional<Applied> at(std::uint64_t epoch, std::uint64_t pos) { return Applied{epoch, pos}; }

}  // namespace

TEST(AppliedWatermark, AdvancesOverTheCompletedPrefixInSeqOrder) {
  auto w = connected();
  auto t1 = w.observe(E, 1, 10, false);
  auto t2 = w.observe(E, 2, 20, false);
  auto t3 = w.observe(E, 3, 30, false);
  EXPECT_EQ(w.applied(), std::nullopt);
  w.completed(t2);  // out of order: 1 is not purged yet
  EXPECT_EQ(w.applied(), std::nullopt);
  w.completed(t1);
  EXPECT_EQ(w.applied(), at(E, 20));
  w.completed(t3);
  EXPECT_EQ(w.applied(), at(E, 30));
  EXPECT_EQ(w.pending(), 0u);
}

TEST(AppliedWatermark, NothingIsPromisedUntilTheConnectResyncIsDone) {
  AppliedWatermark w;
  w.new_session();
  auto connect = w.resync_started();
  w.completed(w.observe(E, 7, 70, false));
  EXPECT_EQ(w.applied(), std::nullopt);  // commits before LISTEN may still be in Redis
  w.resync_completed(connect);
  EXPECT_EQ(w.applied(), at(E, 70));
}

TEST(AppliedWatermark, AGapHoldsItUntilAResyncCoversTheHighestPosSeenWhenTheResyncBegan) {
  auto w = connected();
  w.completed(w.observe(E, 1, 10, false));
  w.completed(w.observe(E, 3, 30, false));  // seq 2 is missing
  EXPECT_EQ(w.applied(), at(E, 10));
  auto gap = w.resync_started();
  auto t4 = w.observe(E, 4, 40, false);  // arrives while the resync runs: not covered by it
  w.resync_completed(gap);
  EXPECT_EQ(w.applied(), at(E, 30));
  w.completed(t4);
  EXPECT_EQ(w.applied(), at(E, 40));
}

TEST(AppliedWatermark, AResyncDoesNotCoverANotificationThatArrivedAfterItBegan) {
  auto w = connected();
  w.completed(w.observe(E, 1, 10, false));
  w.completed(w.observe(E, 3, 30, false));
  auto gap = w.resync_started();
  auto late = w.observe(E, 2, 20, false);  // the missing seq after all: maybe committed after the resync began
  w.resync_completed(gap);
  EXPECT_EQ(w.applied(), at(E, 10));  // held until its own purge is done
  EXPECT_TRUE(w.frozen());
  w.completed(w.observe(E, 4, 40, false));
  EXPECT_EQ(w.applied(), at(E, 10));
  w.completed(late);
  EXPECT_EQ(w.applied(), at(E, 40));
}

TEST(AppliedWatermark, ANotificationAskingForAResyncCountsOnlyWhenAResyncStartedAfterItIsDone) {
  auto w = connected();
  w.completed(w.observe(E, 1, 10, false));
  auto r = w.observe(E, 2, 20, true);  // carries 'r': commits up to 20 may have been lost
  w.completed(r);
  w.completed(w.observe(E, 3, 30, false));
  EXPECT_EQ(w.applied(), at(E, 10));
  auto resync = w.resync_started();
  EXPECT_EQ(w.applied(), at(E, 10));
  w.resync_completed(resync);
  EXPECT_EQ(w.applied(), at(E, 30));
}

TEST(AppliedWatermark, ANewEpochKeepsTheOldValueUntilTheEpochResyncIsDone) {
  auto w = connected();
  w.completed(w.observe(E, 5, 50, false));
  EXPECT_EQ(w.applied(), at(E, 50));
  auto first = w.observe(E + 1, 1, 12, true);  // the tracker said apply_and_resync
  w.completed(first);
  w.completed(w.observe(E + 1, 2, 24, false));
  EXPECT_EQ(w.applied(), at(E, 50));
  auto resync = w.resync_started();
  w.resync_completed(resync);
  EXPECT_EQ(w.applied(), at(E + 1, 24));
}

TEST(AppliedWatermark, ALaterResyncEndsAnEarlierOneWhosePurgeWasDropped) {
  auto w = connected();
  w.observe(E, 1, 10, false);  // its purge is dropped with the backlog: never completes
  auto dropped = w.resync_started();
  auto again = w.resync_started();
  w.resync_completed(again);
  EXPECT_EQ(w.applied(), at(E, 10));
  EXPECT_FALSE(w.frozen());
  w.resync_completed(dropped);  // a late completion changes nothing
  EXPECT_EQ(w.applied(), at(E, 10));
}

TEST(AppliedWatermark, AReconnectStartsANewBaselineAfterItsConnectResync) {
  auto w = connected();
  w.completed(w.observe(E, 1, 10, false));
  auto lost = w.observe(E, 2, 20, false);  // the connection drops before its purge is done
  w.new_session();
  auto connect = w.resync_started();
  auto t9 = w.observe(E, 9, 90, false);  // seqs 3..8 were received by nobody: before LISTEN
  w.completed(lost);
  EXPECT_EQ(w.applied(), at(E, 10));
  w.resync_completed(connect);
  EXPECT_EQ(w.applied(), at(E, 20));
  w.completed(t9);
  EXPECT_EQ(w.applied(), at(E, 90));
}

TEST(AppliedWatermark, PayloadsWithoutPosMoveNothingButStillHoldThePrefix) {
  auto w = connected();
  auto direct = w.observe(E, 1, std::nullopt, false);  // a direct publish sharing the ring's seqs
  auto batch = w.observe(E, 2, 64, false);
  w.completed(batch);
  EXPECT_EQ(w.applied(), std::nullopt);
  w.completed(direct);
  EXPECT_EQ(w.applied(), at(E, 64));
  w.completed(w.observe(E, 3, std::nullopt, false));
  EXPECT_EQ(w.applied(), at(E, 64));
}

TEST(AppliedWatermark, NeverMovesBackwards) {
  auto w = connected();
  w.completed(w.observe(E, 1, 100, false));
  w.completed(w.observe(E, 2, 50, false));  // a chunk that covers less than the batch before it
  EXPECT_EQ(w.applied(), at(E, 100));
  w.completed(w.observe(E - 1, 3, 500, false));  // an older epoch (a replay the tracker rejects)
  EXPECT_EQ(w.applied(), at(E, 100));
}

TEST(AppliedWatermark, IsWorthStoringOnlyWhenACacheRelevantCommitIsPastTheStoredValue) {
  auto w = connected();
  w.completed(w.observe(E, 1, 10, false, /*for_cache=*/false));
  EXPECT_EQ(w.applied(), at(E, 10));
  EXPECT_FALSE(w.worth_storing(std::nullopt));  // application keys only: no session waits for them
  w.completed(w.observe(E, 2, 20, false, /*for_cache=*/true));
  EXPECT_TRUE(w.worth_storing(std::nullopt));
  EXPECT_TRUE(w.worth_storing(at(E, 10)));
  EXPECT_FALSE(w.worth_storing(at(E, 20)));
  w.completed(w.observe(E, 3, 30, false, /*for_cache=*/false));
  EXPECT_FALSE(w.worth_storing(at(E, 20)));  // the key-only commit at 30 changes nothing cached
}

TEST(AppliedWatermark, ACacheRelevantChunkWithoutPosCountsAtTheNextPosOfItsBatch) {
  auto w = connected();
  auto first = w.observe(E, 1, std::nullopt, false, /*for_cache=*/true);  // a batch's first chunk: tags, no pos
  auto last = w.observe(E, 2, 50, false, /*for_cache=*/false);            // its last chunk: keys and the pos
  w.completed(first);
  w.completed(last);
  EXPECT_EQ(w.applied(), at(E, 50));
  EXPECT_TRUE(w.worth_storing(at(E, 40)));
  EXPECT_FALSE(w.worth_storing(at(E, 50)));
}

TEST(AppliedWatermark, IsWorthStoringEarlyWhileTheCacheRelevantCommitIsStillAhead) {
  auto w = connected();
  auto keys = w.observe(E, 1, 10, false, /*for_cache=*/false);
  auto tags = w.observe(E, 2, 20, false, /*for_cache=*/true);
  w.completed(keys);
  // 10 covers no cache-relevant commit, but 20 lies past what Redis holds: storing 10 is
  // harmless, and 20 is stored once its purge completes.
  EXPECT_TRUE(w.worth_storing(std::nullopt));
  w.completed(tags);
  EXPECT_TRUE(w.worth_storing(at(E, 10)));
  EXPECT_FALSE(w.worth_storing(at(E, 20)));
}
