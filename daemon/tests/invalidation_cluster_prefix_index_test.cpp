// The cluster index names each node's sets with a hash tag of one of the node's slots.
#include "invalidation/cluster_prefix_index.h"

#include <gtest/gtest.h>

#include "redis/keyslot.h"

using pgcohere::invalidation::ClusterPrefixIndex;

TEST(ClusterPrefixIndex, ATagForASlotHashesToThatSlot) {
  for (int slot : {0, 1, 5460, 5461, 10922, 16383}) {
    std::string tag = ClusterPrefixIndex::tag_for_slot(slot);
    EXPECT_EQ(pgcohere::redis::keyslot("pgcohere-idx:" + tag + "s:msg:history:42:"), slot) << tag;
    EXPECT_EQ(pgcohere::redis::keyslot("pgcohere-idx:" + tag + "registry"), slot) << tag;
  }
}
