// Cancel keys of peered processes: the peer_id a key carries, the forwarded mark, and the
// route a CancelRequest takes (pooler/cancel_key.h).
#include "pooler/cancel_key.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace ck = pgcohere::pooler::cancel_keys;
using ck::Route;

TEST(CancelKey, APeeredPidCarriesItsPeerIdAndStaysPositive) {
  for (int peer : {1, 2, 255, 256, 8191, ck::kMaxPeerId}) {
    for (std::uint32_t random : {0u, 1u, 0xffffu, 0xffffffffu, 0x12345678u}) {
      std::int32_t pid = ck::make_pid(peer, random);
      EXPECT_GT(pid, 0) << peer << " " << random;
      EXPECT_EQ(ck::peer_of(pid), peer) << random;
      EXPECT_FALSE(ck::forwarded(pid));
    }
  }
}

TEST(CancelKey, APeeredPidKeepsSixteenRandomBits) {
  EXPECT_NE(ck::make_pid(7, 0x0001), ck::make_pid(7, 0x0002));
  EXPECT_EQ(ck::make_pid(7, 0xabcd) & 0xffff, 0xabcd);
  // Bits above the sixteen kept are not allowed to change the peer.
  EXPECT_EQ(ck::make_pid(7, 0xffff0000u | 0x42), ck::make_pid(7, 0x42));
}

TEST(CancelKey, WithoutAPeerIdThePidIsRandomPositiveAndNeverZero) {
  EXPECT_EQ(ck::make_pid(0, 0x7fffffff), 0x7fffffff);
  EXPECT_EQ(ck::make_pid(0, 0xffffffffu), 0x7fffffff);
  EXPECT_EQ(ck::make_pid(0, 0), 1);
  EXPECT_EQ(ck::make_pid(0, 0x80000000u), 1);
}

TEST(CancelKey, TheForwardedMarkComesOffToGiveTheClientsPid) {
  std::int32_t pid = ck::make_pid(3, 0xbeef);
  std::int32_t sent = ck::mark_forwarded(pid);
  EXPECT_TRUE(ck::forwarded(sent));
  EXPECT_GT(sent, 0);
  EXPECT_EQ(ck::peer_of(sent), 3);
  EXPECT_EQ(ck::original_pid(sent), pid);
  EXPECT_EQ(ck::original_pid(pid), pid);
}

TEST(CancelKey, AProcessHandlesItsOwnKeysForwardedOrNot) {
  std::int32_t pid = ck::make_pid(2, 99);
  EXPECT_EQ(ck::route(2, pid, true), Route::local);
  EXPECT_EQ(ck::route(2, pid, false), Route::local);
  EXPECT_EQ(ck::route(2, ck::mark_forwarded(pid), true), Route::local);
}

TEST(CancelKey, AnotherPeersKeyIsForwardedOnlyWhenThatPeerIsKnown) {
  std::int32_t pid = ck::make_pid(1, 99);
  EXPECT_EQ(ck::route(2, pid, true), Route::forward);
  EXPECT_EQ(ck::route(2, pid, false), Route::unknown_peer);
}

TEST(CancelKey, AKeyForwardedOnceIsNeverForwardedAgain) {
  // Peer 2 got a key of peer 1 from peer 3 (say [peers] 1 points at the wrong process):
  // it drops it rather than send it on, so two misconfigured peers cannot loop.
  std::int32_t sent = ck::mark_forwarded(ck::make_pid(1, 99));
  EXPECT_EQ(ck::route(2, sent, true), Route::not_ours_again);
}

TEST(CancelKey, AProcessWithoutPeerIdTreatsEveryKeyAsItsOwn) {
  EXPECT_EQ(ck::route(0, ck::make_pid(5, 1), true), Route::local);
  EXPECT_EQ(ck::route(0, ck::make_pid(0, 0x7fff1234), false), Route::local);
}
