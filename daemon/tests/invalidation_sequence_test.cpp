// Sequence/epoch tracking with a fake clock: replays, gaps with a grace period, epochs.
#include "invalidation/sequence_tracker.h"

#include <gtest/gtest.h>

using pgcohere::invalidation::SequenceTracker;
using V = SequenceTracker::Verdict;
using namespace std::chrono_literals;

namespace {
const SequenceTracker::TimePoint t0{};
}

TEST(SequenceTracker, InOrderThenReplay) {
  SequenceTracker t(500ms);
  EXPECT_EQ(t.observe(9, 1, t0), V::apply);
  EXPECT_EQ(t.observe(9, 2, t0), V::apply);
  EXPECT_EQ(t.observe(9, 3, t0), V::apply);
  EXPECT_EQ(t.floor(), 3u);
  EXPECT_EQ(t.observe(9, 2, t0), V::replay);
  EXPECT_EQ(t.observe(9, 3, t0), V::replay);
  EXPECT_FALSE(t.gap_expired(t0 + 1h));
}

TEST(SequenceTracker, OutOfOrderWithinGraceIsNoGap) {
  SequenceTracker t(500ms);
  t.observe(9, 1, t0);
  EXPECT_EQ(t.observe(9, 3, t0 + 10ms), V::apply);
  EXPECT_EQ(t.missing(), 1u);
  ASSERT_TRUE(t.next_deadline());
  EXPECT_EQ(*t.next_deadline(), t0 + 510ms);
  EXPECT_FALSE(t.gap_expired(t0 + 509ms));
  EXPECT_EQ(t.observe(9, 2, t0 + 100ms), V::apply);
  EXPECT_EQ(t.missing(), 0u);
  EXPECT_EQ(t.floor(), 3u);
  EXPECT_FALSE(t.gap_expired(t0 + 10s));
}

TEST(SequenceTracker, GapExpiresThenResyncCoversIt) {
  SequenceTracker t(500ms);
  t.observe(9, 1, t0);
  t.observe(9, 4, t0);
  EXPECT_EQ(t.missing(), 2u);
  EXPECT_TRUE(t.gap_expired(t0 + 500ms));
  t.resynced();
  EXPECT_FALSE(t.gap_expired(t0 + 10s));
  EXPECT_EQ(t.observe(9, 5, t0 + 1s), V::apply);
  // A late commit of a seq the resync already covered is still genuine: apply it once.
  EXPECT_EQ(t.observe(9, 2, t0 + 1s), V::apply);
  EXPECT_EQ(t.observe(9, 2, t0 + 1s), V::replay);
}

TEST(SequenceTracker, OldestGapDecidesTheDeadline) {
  SequenceTracker t(500ms);
  t.observe(9, 1, t0);
  t.observe(9, 3, t0);          // 2 missing since t0
  t.observe(9, 5, t0 + 300ms);  // 4 missing since t0+300ms
  EXPECT_EQ(*t.next_deadline(), t0 + 500ms);
  t.observe(9, 2, t0 + 400ms);  // first gap filled
  EXPECT_EQ(t.floor(), 3u);
  EXPECT_EQ(*t.next_deadline(), t0 + 800ms);
  EXPECT_FALSE(t.gap_expired(t0 + 799ms));
  EXPECT_TRUE(t.gap_expired(t0 + 800ms));
}

TEST(SequenceTracker, NewEpochMidSessionResyncs) {
  SequenceTracker t;
  t.observe(9, 1, t0);
  t.observe(9, 2, t0);
  EXPECT_EQ(t.observe(10, 1, t0), V::apply_and_resync);
  EXPECT_EQ(*t.epoch(), 10u);
  EXPECT_EQ(t.observe(10, 2, t0), V::apply);
  // Payloads of an epoch we left are replays, and cannot flip us back.
  EXPECT_EQ(t.observe(9, 3, t0), V::replay);
  EXPECT_EQ(*t.epoch(), 10u);
}

TEST(SequenceTracker, ConnectStartsANewBaseline) {
  SequenceTracker t;
  t.observe(9, 1, t0);
  t.reset_session();
  // Seqs 2..99 were sent while we were away: the connect's resync covered them.
  EXPECT_EQ(t.observe(9, 100, t0), V::apply);
  EXPECT_EQ(t.missing(), 0u);
  EXPECT_FALSE(t.gap_expired(t0 + 1h));
  // A seq taken before our LISTEN but committed after it is still applied.
  EXPECT_EQ(t.observe(9, 99, t0), V::apply);
  EXPECT_EQ(t.observe(9, 1, t0), V::replay);
}

TEST(SequenceTracker, NewEpochRightAfterConnectNeedsNoSecondResync) {
  SequenceTracker t;
  t.observe(9, 5, t0);
  t.reset_session();
  EXPECT_EQ(t.observe(11, 1, t0), V::apply);
  EXPECT_EQ(t.observe(9, 6, t0), V::replay);
}

TEST(SequenceTracker, FarBelowTheWindowIsAReplay) {
  SequenceTracker t;
  t.observe(9, 1, t0);
  t.observe(9, 2 + SequenceTracker::kWindow, t0);
  t.resynced();
  EXPECT_EQ(t.observe(9, 2, t0), V::replay);
  EXPECT_EQ(t.observe(9, 3 + SequenceTracker::kWindow, t0), V::apply);
}

// Review fix: a replayed payload of an older epoch (anyone can LISTEN, keep a signed payload
// and NOTIFY it again later) used to become the current epoch, after which every genuine
// payload counted as a replay and nothing was purged any more.
TEST(SequenceTracker, OlderEpochIsAReplayAndCannotLockOut) {
  SequenceTracker t;
  EXPECT_EQ(t.observe(200, 50, t0), V::apply);
  EXPECT_EQ(t.observe(100, 7, t0), V::replay);
  EXPECT_EQ(*t.epoch(), 200u);
  EXPECT_EQ(t.observe(200, 51, t0), V::apply);
  EXPECT_EQ(t.observe(200, 52, t0), V::apply);
  EXPECT_EQ(t.observe(200, 53, t0), V::apply);
  EXPECT_EQ(t.missing(), 0u);
  EXPECT_FALSE(t.gap_expired(t0 + 1h));
}

TEST(SequenceTracker, OlderEpochAfterConnectIsAReplayToo) {
  SequenceTracker t;
  t.observe(200, 50, t0);
  t.reset_session();
  EXPECT_EQ(t.observe(100, 7, t0), V::replay);
  EXPECT_EQ(t.observe(200, 60, t0), V::apply);
  // The replay did not use up the session's first payload: a newer epoch right after the
  // connect needs no second resync.
  t.reset_session();
  EXPECT_EQ(t.observe(100, 8, t0), V::replay);
  EXPECT_EQ(t.observe(300, 1, t0), V::apply);
  EXPECT_EQ(t.observe(200, 61, t0), V::replay);
  EXPECT_EQ(*t.epoch(), 300u);
}

TEST(SequenceTracker, ReplayedOldEpochAsFirstPayloadOnlyCostsAResync) {
  // After a daemon start the first payload is the baseline, even a replayed one; the next
  // genuine payload has a higher epoch and brings the tracker back with a resync.
  SequenceTracker t;
  EXPECT_EQ(t.observe(100, 7, t0), V::apply);
  EXPECT_EQ(t.observe(200, 51, t0), V::apply_and_resync);
  EXPECT_EQ(t.observe(200, 52, t0), V::apply);
  EXPECT_EQ(t.observe(100, 8, t0), V::replay);
}

TEST(SequenceTracker, FirstPayloadAfterStartIsTheBaselineWhateverItsSeq) {
  const std::uint64_t install_us = 1'795'000'000'000'000ull;  // direct mode: seqs start at install time
  SequenceTracker t;
  EXPECT_EQ(t.observe(5, install_us + 40, t0), V::apply);
  EXPECT_EQ(t.missing(), 0u);
  EXPECT_FALSE(t.next_deadline());
  EXPECT_EQ(t.observe(5, install_us + 41, t0), V::apply);
  EXPECT_FALSE(t.gap_expired(t0 + 1h));
}

TEST(SequenceTracker, BigForwardJumpInTheSameEpochIsAGap) {
  // DROP/CREATE EXTENSION in direct mode: same epoch, seqs restart at the install time in us.
  const std::uint64_t install_us = 1'795'000'000'000'000ull;
  SequenceTracker t(500ms);
  EXPECT_EQ(t.observe(5, 100, t0), V::apply);
  EXPECT_EQ(t.observe(5, install_us + 2, t0 + 1ms), V::apply);
  ASSERT_TRUE(t.next_deadline());
  EXPECT_FALSE(t.gap_expired(t0 + 400ms));
  // Out of order within the new range: still applied.
  EXPECT_EQ(t.observe(5, install_us + 1, t0 + 2ms), V::apply);
  EXPECT_EQ(t.observe(5, install_us + 3, t0 + 3ms), V::apply);
  EXPECT_TRUE(t.gap_expired(t0 + 501ms));
  t.resynced();
  EXPECT_FALSE(t.gap_expired(t0 + 1h));
  EXPECT_EQ(t.observe(5, install_us + 4, t0 + 1s), V::apply);
  EXPECT_EQ(t.observe(5, install_us + 3, t0 + 1s), V::replay);
  EXPECT_EQ(t.missing(), 0u);
}

TEST(SequenceTracker, SeqAtTheTopOfTheRangeDoesNotWrap) {
  const std::uint64_t top = ~std::uint64_t{0};
  SequenceTracker t;
  EXPECT_EQ(t.observe(5, top - 1, t0), V::apply);
  EXPECT_EQ(t.observe(5, top, t0), V::apply);
  EXPECT_EQ(t.missing(), 0u);
  EXPECT_EQ(t.observe(5, top, t0), V::replay);
}
