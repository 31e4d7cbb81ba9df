// Admission rules of a pool: which limits apply (the [databases] entry's or the global
// ones), when one more server connection may be opened, when one more client may log in;
// and PoolEntry's actions, the only way its state changes.
#include "pooler/pool_entry.h"

#include <gtest/gtest.h>

#include "metrics/registry.h"
#include "pooler/listener.h"
#include "pooler/server_conn.h"

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

// ---- PoolEntry: its state changes only through its actions ----
namespace {
using pgcohere::pooler::PoolEntry;

struct EntryFixture {
  pgcohere::metrics::Registry registry;
  pgcohere::metrics::Histogram& waits =
      registry.histogram("queue_wait_ms", "test", pgcohere::metrics::latency_buckets_ms());
  pgcohere::metrics::Histogram& held =
      registry.histogram("xact_ms", "test", pgcohere::metrics::latency_buckets_ms());
  PoolEntry entry{"app", "alice", target(), waits, held};
  int launched = 0;
  bool may_open = true;

  EntryFixture() {
    entry.set_hooks([this] { ++launched; }, [this] { return may_open; },
                    [](const pgcohere::pooler::ServerConn&) { return false; },
                    [](std::shared_ptr<pgcohere::pooler::ServerConn>) {});
  }
  static pgcohere::pool::Target target() {
    pgcohere::pool::Target t;
    t.pool_size = 4;
    t.pool_mode = "session";
    return t;
  }
};
}  // namespace

TEST(PoolEntryActions, ConfigureTakesTheTargetsModeAndLimitsAndTheSettingsForTheRest) {
  EntryFixture f;
  f.entry.configure(settings());
  EXPECT_EQ(f.entry.mode(), PoolMode::session);
  EXPECT_EQ(f.entry.queue().limits().pool_size, 4);
  EXPECT_EQ(f.entry.queue().limits().min_pool_size, 2);
  EXPECT_EQ(f.entry.queue().limits().reserve_pool_size, 3);
}

TEST(PoolEntryActions, AReloadedTargetTakesEffectAtTheNextConfigure) {
  EntryFixture f;
  f.entry.configure(settings());
  auto t = EntryFixture::target();
  t.pool_size = 9;
  t.pool_mode = "";
  f.entry.retarget(t);
  EXPECT_EQ(f.entry.queue().limits().pool_size, 4);
  f.entry.configure(settings());
  EXPECT_EQ(f.entry.queue().limits().pool_size, 9);
  EXPECT_EQ(f.entry.mode(), PoolMode::transaction);
}

TEST(PoolEntryActions, MinPoolSizeOpensConnectionsOnlyWhileAdmissionAllows) {
  EntryFixture f;
  f.entry.configure(settings());  // min_pool_size 2
  f.may_open = false;             // e.g. max_db_connections reached over all pools
  f.entry.ensure_min();
  EXPECT_EQ(f.launched, 0);
  EXPECT_EQ(f.entry.queue().total(), 0);
  f.may_open = true;
  f.entry.ensure_min();
  EXPECT_EQ(f.launched, 2);
  EXPECT_EQ(f.entry.queue().connecting(), 2);
  f.entry.ensure_min();  // already there
  EXPECT_EQ(f.launched, 2);
}

TEST(PoolEntryActions, LinkWithoutAnIdleConnectionGivesNothingAndCountsNoWait) {
  EntryFixture f;
  f.entry.configure(settings());
  EXPECT_EQ(f.entry.link(), nullptr);
  EXPECT_EQ(f.entry.stats().wait_count, 0u);
  EXPECT_EQ(f.waits.snapshot().count, 0u);
}

TEST(PoolEntryActions, AWaitIsCountedInTheStatsAndTheHistogram) {
  EntryFixture f;
  f.entry.waited(std::chrono::microseconds(2500));
  EXPECT_EQ(f.entry.stats().wait_count, 1u);
  EXPECT_EQ(f.entry.stats().wait_time_us, 2500u);
  EXPECT_EQ(f.waits.snapshot().count, 1u);
}

TEST(PoolEntryActions, ServerLoginsUseAClientsCredentialsOnlyForTheServerUserAndWithoutAPassword) {
  EntryFixture f;
  pgcohere::auth::ServerCredentials other;
  other.user = "bob";
  other.password = "secret";
  f.entry.remember_credentials(other);
  EXPECT_TRUE(f.entry.credentials().empty());
  pgcohere::auth::ServerCredentials own = other;
  own.user = "alice";
  f.entry.remember_credentials(own);
  EXPECT_EQ(f.entry.credentials().password, std::optional<std::string>("secret"));

  auto with_password = EntryFixture::target();
  with_password.password = "from-databases";
  pgcohere::metrics::Registry registry;
  PoolEntry entry("app", "alice", with_password,
                  registry.histogram("w", "test", pgcohere::metrics::latency_buckets_ms()),
                  registry.histogram("x", "test", pgcohere::metrics::latency_buckets_ms()));
  entry.remember_credentials(own);
  EXPECT_TRUE(entry.credentials().empty());
}

TEST(PoolEntryActions, TheFirstServerLoginsParametersAreTheOnesClientsAreTold) {
  EntryFixture f;
  EXPECT_FALSE(f.entry.defaults_known());
  pgcohere::session::ParamMap first, second;
  first.set("server_version", "15.1");
  second.set("server_version", "16.0");
  f.entry.learn_defaults(first);
  f.entry.learn_defaults(second);
  EXPECT_TRUE(f.entry.defaults_known());
  ASSERT_NE(f.entry.server_defaults().get("server_version"), nullptr);
  EXPECT_EQ(*f.entry.server_defaults().get("server_version"), "15.1");
}

TEST(PoolEntryActions, ClientsThatLogInWithTheSameParametersShareOneCopy) {
  EntryFixture f;
  auto login = [](std::string_view app) {
    pgcohere::session::ParamMap p;
    p.set("TimeZone", "UTC");
    p.set("application_name", app);
    return p;
  };
  auto a = login("web"), b = login("web"), c = login("batch"), d = login("batch");
  f.entry.share_login_params(a);
  f.entry.share_login_params(b);
  EXPECT_TRUE(b.shares_storage_with(a));
  f.entry.share_login_params(c);  // different: kept as it is, and shared from now on
  EXPECT_FALSE(c.shares_storage_with(a));
  f.entry.share_login_params(d);
  EXPECT_TRUE(d.shares_storage_with(c));
  EXPECT_EQ(*d.get("application_name"), "batch");
}

TEST(PoolEntryActions, AFailedServerLoginIsCountedAndKeptForShowPools) {
  EntryFixture f;
  f.entry.connect_failed("password authentication failed", std::chrono::steady_clock::now());
  EXPECT_EQ(f.entry.stats().server_connect_errors, 1u);
  EXPECT_EQ(f.entry.last_connect_error(), "password authentication failed");
}

TEST(PoolEntryActions, AfterAFailedLoginAPoolWithoutConnectionsRefusesClientsUntilServerLoginRetry) {
  EntryFixture f;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(f.entry.refusal(t0, 15));
  f.entry.connect_failed("Connection refused", t0);
  auto why = f.entry.refusal(t0 + std::chrono::seconds(1), 15);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "server login failed: Connection refused");
  EXPECT_FALSE(f.entry.may_try_login(t0 + std::chrono::seconds(14), 15));
  // Once server_login_retry has passed, the next client waits for a new attempt.
  EXPECT_FALSE(f.entry.refusal(t0 + std::chrono::seconds(15), 15));
  EXPECT_TRUE(f.entry.may_try_login(t0 + std::chrono::seconds(15), 15));
}

TEST(PoolEntryActions, AfterAFailedLoginTheJanitorRetriesForWaitersOnlyOnceServerLoginRetryPassed) {
  EntryFixture f;
  f.entry.configure(settings());
  auto t0 = std::chrono::steady_clock::now();
  f.entry.connect_failed("Connection refused", t0);
  f.may_open = false;  // what the pooler's admission hook says inside the retry window
  f.entry.wait(nullptr);
  EXPECT_EQ(f.launched, 0);
  f.entry.retry_login(t0 + std::chrono::seconds(1), 15);
  EXPECT_EQ(f.launched, 0);
  f.may_open = true;
  f.entry.retry_login(t0 + std::chrono::seconds(16), 15);
  EXPECT_EQ(f.launched, 1);
  f.entry.stop_waiting(nullptr);
}

TEST(PoolEntryActions, ATransactionIsCountedInTheStatsAndTheDurationHistogram) {
  EntryFixture f;
  f.entry.count_xact(std::chrono::microseconds(1500));
  EXPECT_EQ(f.entry.stats().xact_count, 1u);
  EXPECT_EQ(f.entry.stats().xact_time_us, 1500u);
  EXPECT_EQ(f.held.snapshot().count, 1u);
  EXPECT_DOUBLE_EQ(f.held.snapshot().sum, 1.5);
}
