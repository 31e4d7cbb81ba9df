// The janitor's decisions with a fake clock: every timeout fires just past its limit,
// not at it, and 0 turns it off (PgBouncer's meanings).
#include "pooler/janitor.h"

#include <gtest/gtest.h>

namespace janitor = pgcohere::pooler::janitor;
using janitor::IdleServer;
using namespace std::chrono_literals;

namespace {
const janitor::Clock::time_point t0{};

pgcohere::config::DaemonSettings settings() {
  pgcohere::config::DaemonSettings d;
  d.client_login_timeout = 60;
  d.server_idle_timeout = 600;
  d.server_lifetime = 3600;
  d.server_check_query = "select 1";
  d.server_check_delay = 30;
  d.client_idle_timeout = 0;
  d.query_timeout = 0;
  d.idle_transaction_timeout = 0;
  d.query_wait_timeout = 120;
  d.reserve_pool_timeout = 5;
  d.stats_period = 60;
  return d;
}

janitor::ClientState linked_client(bool busy, char tx_status, janitor::Clock::time_point last) {
  janitor::ClientState c;
  c.linked = true;
  c.server_busy = busy;
  c.server_tx_status = tx_status;
  c.last_activity = last;
  c.server_last_activity = last;
  return c;
}
}  // namespace

TEST(JanitorLogin, AClientThatHasNotLoggedInIsClosedOnlyAfterClientLoginTimeout) {
  auto d = settings();
  EXPECT_FALSE(janitor::login_expired(t0 + 60s, t0, false, d));
  EXPECT_TRUE(janitor::login_expired(t0 + 60s + 1ms, t0, false, d));
}

TEST(JanitorLogin, ALoggedInClientOrATimeoutOfZeroNeverExpires) {
  auto d = settings();
  EXPECT_FALSE(janitor::login_expired(t0 + 1h, t0, true, d));
  d.client_login_timeout = 0;
  EXPECT_FALSE(janitor::login_expired(t0 + 1h, t0, false, d));
}

TEST(JanitorIdleServer, AConnectionIdlePastServerIdleTimeoutIsClosed) {
  auto d = settings();
  EXPECT_EQ(janitor::idle_server(t0 + 600s, t0, t0, d), IdleServer::check_due);
  EXPECT_EQ(janitor::idle_server(t0 + 601s, t0, t0, d), IdleServer::close);
  d.server_idle_timeout = 0;
  EXPECT_EQ(janitor::idle_server(t0 + 601s, t0, t0, d), IdleServer::check_due);
}

TEST(JanitorIdleServer, AConnectionOlderThanServerLifetimeIsClosedEvenIfRecentlyUsed) {
  auto d = settings();
  EXPECT_EQ(janitor::idle_server(t0 + 3601s, t0 + 3600s, t0, d), IdleServer::close);
  d.server_lifetime = 0;
  EXPECT_EQ(janitor::idle_server(t0 + 3601s, t0 + 3600s, t0, d), IdleServer::keep);
}

TEST(JanitorIdleServer, AConnectionIdlePastServerCheckDelayNeedsACheckUnlessThereIsNoCheckQuery) {
  auto d = settings();
  EXPECT_EQ(janitor::idle_server(t0 + 30s, t0, t0, d), IdleServer::keep);
  EXPECT_EQ(janitor::idle_server(t0 + 31s, t0, t0, d), IdleServer::check_due);
  d.server_check_query.clear();
  EXPECT_EQ(janitor::idle_server(t0 + 31s, t0, t0, d), IdleServer::keep);
}

TEST(JanitorClients, AnIdleClientWithoutAServerExpiresAfterClientIdleTimeout) {
  auto d = settings();
  janitor::ClientState c;
  c.last_activity = t0;
  EXPECT_FALSE(janitor::client_timeout(t0 + 1h, c, d));  // 0: off
  d.client_idle_timeout = 10;
  EXPECT_FALSE(janitor::client_timeout(t0 + 10s, c, d));
  EXPECT_EQ(janitor::client_timeout(t0 + 11s, c, d), "client_idle_timeout");
}

TEST(JanitorClients, AClientWaitingForAServerIsNotIdle) {
  auto d = settings();
  d.client_idle_timeout = 10;
  janitor::ClientState c;
  c.last_activity = t0;
  c.waiting = true;
  EXPECT_FALSE(janitor::client_timeout(t0 + 1h, c, d));
}

TEST(JanitorClients, AQueryExpiresOnlyWhenBothTheClientAndTheServerWereQuietPastQueryTimeout) {
  auto d = settings();
  d.query_timeout = 5;
  auto c = linked_client(true, 'T', t0);
  EXPECT_FALSE(janitor::client_timeout(t0 + 5s, c, d));
  EXPECT_EQ(janitor::client_timeout(t0 + 6s, c, d), janitor::kQueryTimeout);
  c.server_last_activity = t0 + 4s;  // the answer is still streaming
  EXPECT_FALSE(janitor::client_timeout(t0 + 6s, c, d));
}

TEST(JanitorClients, AnIdleTransactionExpiresAfterIdleTransactionTimeoutButAnIdleLinkDoesNot) {
  auto d = settings();
  d.idle_transaction_timeout = 5;
  auto in_tx = linked_client(false, 'T', t0);
  EXPECT_FALSE(janitor::client_timeout(t0 + 5s, in_tx, d));
  EXPECT_EQ(janitor::client_timeout(t0 + 6s, in_tx, d), "idle transaction timeout");
  auto failed_tx = linked_client(false, 'E', t0);
  EXPECT_EQ(janitor::client_timeout(t0 + 6s, failed_tx, d), "idle transaction timeout");
  auto session_link = linked_client(false, 'I', t0);  // session mode keeps an idle link
  EXPECT_FALSE(janitor::client_timeout(t0 + 1h, session_link, d));
}

TEST(JanitorClients, ABusyServerIsNeverAnIdleTransaction) {
  auto d = settings();
  d.idle_transaction_timeout = 5;
  auto c = linked_client(true, 'T', t0);
  EXPECT_FALSE(janitor::client_timeout(t0 + 1h, c, d));  // query_timeout is 0
}

TEST(JanitorWaiters, AWaiterGetsQueryWaitTimeoutAtTheLimit) {
  auto d = settings();
  EXPECT_FALSE(janitor::wait_expired(t0 + 119s, t0, d));
  EXPECT_TRUE(janitor::wait_expired(t0 + 120s, t0, d));
  d.query_wait_timeout = 0;
  EXPECT_FALSE(janitor::wait_expired(t0 + 1h, t0, d));
}

TEST(JanitorReserve, TheReservePoolOpensWhenTheOldestWaiterWaitedPastReservePoolTimeout) {
  auto d = settings();
  EXPECT_FALSE(janitor::reserve_due(t0 + 5s, t0, 2, d));
  EXPECT_TRUE(janitor::reserve_due(t0 + 5s + 1ms, t0, 2, d));
  EXPECT_FALSE(janitor::reserve_due(t0 + 1h, t0, 0, d));  // no reserve pool
}

TEST(JanitorStats, TheStatsPeriodIsAtLeastOneSecond) {
  auto d = settings();
  EXPECT_FALSE(janitor::stats_period_over(t0 + 59s, t0, d));
  EXPECT_TRUE(janitor::stats_period_over(t0 + 60s, t0, d));
  d.stats_period = 0;
  EXPECT_FALSE(janitor::stats_period_over(t0 + 999ms, t0, d));
  EXPECT_TRUE(janitor::stats_period_over(t0 + 1s, t0, d));
}

TEST(Janitor, OnlyAQuietClientWithNothingLinkedOrQueuedParks) {
  janitor::ClientState c;
  c.last_activity = t0;
  EXPECT_FALSE(janitor::parks(t0 + 999ms, c));  // busy clients keep their coroutine
  EXPECT_TRUE(janitor::parks(t0 + 1s, c));
  c.waiting = true;
  EXPECT_FALSE(janitor::parks(t0 + 10s, c));  // queued: its coroutine waits for a server
  EXPECT_FALSE(janitor::parks(t0 + 10s, linked_client(false, 'I', t0)));  // session pooling, or mid-transaction
}
