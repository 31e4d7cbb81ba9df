// Admission rules of a pool: which limits apply (the [databases] entry's or the global
// ones), when one more server connection may be opened, when one more client may log in.
#include "pooler/pool_entry.h"

#include <gtest/gtest.h>

#include "pooler/listener.h"

namespace admission = pgcohere::pooler::admission;
using pgcohere::pooler::PoolMode;

namespace {
pgcohere::config::DaemonSettings settings() {
  pgcohere::config::DaemonSettings d;
  d.default_pool_size = 20;
  d.min_pool_size = 2;
  d.reserve_pool_size = 3;
  d.pool_mode = "transaction";
  d.max_db_connections = 50;
  return d;
}
}  // namespace

TEST(PoolAdmission, ATargetWithoutItsOwnLimitsUsesTheGlobalOnes) {
  pgcohere::pool::Target t;
  auto l = admission::limits_for(t, settings());
  EXPECT_EQ(l.pool_size, 20);
  EXPECT_EQ(l.min_pool_size, 2);
  EXPECT_EQ(l.reserve_pool_size, 3);
  EXPECT_EQ(admission::mode_for(t, settings()), PoolMode::transaction);
  EXPECT_EQ(admission::max_db_connections(t, settings()), 50);
}

TEST(PoolAdmission, TheDatabasesEntryOverridesEachLimitEvenWithZero) {
  pgcohere::pool::Target t;
  t.pool_size = 5;
  t.min_pool_size = 0;
  t.reserve_pool = 0;
  t.max_db_connections = 0;
  t.pool_mode = "session";
  auto l = admission::limits_for(t, settings());
  EXPECT_EQ(l.pool_size, 5);
  EXPECT_EQ(l.min_pool_size, 0);
  EXPECT_EQ(l.reserve_pool_size, 0);
  EXPECT_EQ(admission::mode_for(t, settings()), PoolMode::session);
  EXPECT_EQ(admission::max_db_connections(t, settings()), 0);  // no limit for this database
}

TEST(PoolAdmission, AnUnknownPoolModeMeansTransaction) {
  pgcohere::pool::Target t;
  t.pool_mode = "statement";
  EXPECT_EQ(admission::mode_for(t, settings()), PoolMode::statement);
  t.pool_mode = "bogus";
  EXPECT_EQ(admission::mode_for(t, settings()), PoolMode::transaction);
}

TEST(PoolAdmission, AServerConnectionOpensOnlyBelowBothMaxDbAndMaxUserConnections) {
  EXPECT_TRUE(admission::may_open_server(9, 4, 10, 5));
  EXPECT_FALSE(admission::may_open_server(10, 4, 10, 5));
  EXPECT_FALSE(admission::may_open_server(9, 5, 10, 5));
}

TEST(PoolAdmission, ALimitOfZeroIsNoLimit) {
  EXPECT_TRUE(admission::may_open_server(1000, 1000, 0, 0));
  EXPECT_TRUE(admission::may_open_server(1000, 4, 0, 5));
  EXPECT_FALSE(admission::may_open_server(1000, 5, 0, 5));
}

TEST(ClientAdmission, MaxClientConnCountsTheNewConnectionItself) {
  EXPECT_TRUE(pgcohere::pooler::client_admitted(100, 100));
  EXPECT_FALSE(pgcohere::pooler::client_admitted(101, 100));
}

TEST(CancelKeys, PidAndKeyFormOneNumberWithoutSignExtension) {
  EXPECT_EQ(pgcohere::pooler::cancel_key(1, -1), 0x00000001ffffffffULL);
  EXPECT_EQ(pgcohere::pooler::cancel_key(0x7fffffff, 2), 0x7fffffff00000002ULL);
}
