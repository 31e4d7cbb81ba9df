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
