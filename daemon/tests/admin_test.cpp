// Admin console: command parsing, PgBouncer 1.24+ result set shapes, dispatch to the ConsoleTarget.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>

#include "admin/console.h"
#include "admin/show.h"

using namespace pgcohere::admin;

namespace {

std::vector<std::string> names(const ResultSet& r) {
  std::vector<std::string> out;
  for (const auto& c : r.columns) out.push_back(c.name);
  return out;
}

Command parse_ok(std::string_view q) {
  auto p = parse_command(q);
  EXPECT_TRUE(p.command) << q << ": " << p.error;
  return p.command.value_or(Command{});
}

class FakeTarget : public ConsoleTarget {
 public:
  Snapshot snap;
  std::vector<std::string> calls;
  std::string fail_with;
  ConsoleTarget::Done pending;  // PAUSE completes later
  Show asked = Show::help;

  Snapshot snapshot(Show what) override {
    asked = what;
    return snap;
  }
  void pause(const std::string& db, Done done) override {
    calls.push_back("pause:" + db);
    pending = std::move(done);
  }
  void resume(const std::string& db, Done done) override {
    calls.push_back("resume:" + db);
    done(fail_with);
  }
  void reload(Done done) override {
    calls.push_back("reload");
    done(fail_with);
  }
  void shutdown(const std::string& mode, Done done) override {
    calls.push_back("shutdown:" + mode);
    done("");
  }
  void kill(const std::string& db, Done done) override {
    calls.push_back("kill:" + db);
    done("");
  }
};

}  // namespace

TEST(AdminParse, CaseInsensitiveWithSemicolonAndWhitespace) {
  EXPECT_EQ(parse_ok("SHOW POOLS").show, Show::pools);
  EXPECT_EQ(parse_ok("show pools;").show, Show::pools);
  EXPECT_EQ(parse_ok("  Show\tStats_Totals ;  \n").show, Show::stats_totals);
  EXPECT_EQ(parse_ok("show \"stats\"").show, Show::stats);
  EXPECT_EQ(parse_ok("SELECT version").show, Show::version);
  for (auto [q, s] : {std::pair{"show stats", Show::stats}, {"show servers", Show::servers},
                      {"show clients", Show::clients}, {"show databases", Show::databases},
                      {"show config", Show::config}, {"show lists", Show::lists},
                      {"show users", Show::users}, {"show version", Show::version},
                      {"show mem", Show::mem}, {"show totals", Show::totals},
                      {"show stats_averages", Show::stats_averages}, {"show help", Show::help},
                      {"show state", Show::state}})
    EXPECT_EQ(parse_ok(q).show, s) << q;
}

TEST(AdminParse, CommandsWithAndWithoutDatabase) {
  Command c = parse_ok("PAUSE");
  EXPECT_EQ(c.verb, Verb::pause);
  EXPECT_EQ(c.arg, "");
  c = parse_ok("pause appdb;");
  EXPECT_EQ(c.verb, Verb::pause);
  EXPECT_EQ(c.arg, "appdb");
  c = parse_ok("RESUME \"My\"\"Db\"");
  EXPECT_EQ(c.verb, Verb::resume);
  EXPECT_EQ(c.arg, "My\"Db");
  EXPECT_EQ(parse_ok("Resume AppDb").arg, "AppDb");  // as typed, like PgBouncer
  EXPECT_EQ(parse_ok("reload").verb, Verb::reload);
  EXPECT_EQ(parse_ok("KILL appdb").verb, Verb::kill);
  EXPECT_EQ(parse_ok("kill").arg, "");
  EXPECT_EQ(parse_ok("suspend").verb, Verb::suspend);
  EXPECT_EQ(parse_ok("shutdown").arg, "");
  EXPECT_EQ(parse_ok("shutdown wait_for_clients").arg, "WAIT_FOR_CLIENTS");
  EXPECT_EQ(parse_ok("kill_client 42").arg, "42");
  c = parse_ok("SET default_pool_size = 50");
  EXPECT_EQ(c.verb, Verb::set);
  EXPECT_EQ(c.arg, "default_pool_size");
  EXPECT_EQ(c.value, "50");
  EXPECT_EQ(parse_ok("set server_reset_query to 'DISCARD ALL'").value, "DISCARD ALL");
  EXPECT_EQ(parse_ok("show client_encoding").show, Show::param);
}

TEST(AdminParse, ClearErrorsForEverythingElse) {
  for (const char* q : {"", ";", "SHOW", "SHOW POOLZ", "DROP TABLE x", "SHOW POOLS EXTRA",
                        "PAUSE a b", "RELOAD now", "SUSPEND x", "SHUTDOWN later",
                        "SHOW POOLS; SHOW STATS", "SELECT 1 + 1", "SHOW \"unterminated",
                        "SET x", "pause 'db'"}) {
    auto p = parse_command(q);
    EXPECT_FALSE(p.command) << q;
    EXPECT_EQ(p.error, "invalid command '" + std::string(q) + "', use SHOW HELP;") << q;
  }
  EXPECT_EQ(parse_command("kill_client abc").error, "invalid client pointer supplied");
  EXPECT_EQ(parse_command("disable").error, "a database is required");
}

TEST(AdminParse, PrivilegeClasses) {
  EXPECT_FALSE(requires_admin(parse_ok("show pools")));
  EXPECT_TRUE(requires_admin(parse_ok("show fds")));
  EXPECT_TRUE(requires_admin(parse_ok("pause")));
  EXPECT_TRUE(requires_admin(parse_ok("set default_pool_size = 1")));
  EXPECT_FALSE(requires_admin(parse_ok("set client_encoding = 'UTF8'")));
}

TEST(AdminShow, PoolsColumnsAndValues) {
  PoolRow p;
  p.database = "appdb";
  p.user = "app";
  p.cl_active = 3;
  p.cl_waiting = 2;
  p.sv_active = 1;
  p.sv_idle = 4;
  p.maxwait_us = 2'500'000;
  p.pool_mode = "transaction";
  ResultSet r = show_pools({p});
  EXPECT_EQ(names(r), (std::vector<std::string>{
                          "database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req",
                          "cl_waiting_cancel_req", "sv_active", "sv_active_cancel",
                          "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
                          "maxwait", "maxwait_us", "pool_mode", "load_balance_hosts"}));
  EXPECT_EQ(r.columns[0].type_oid, oid::text);
  EXPECT_EQ(r.columns[2].type_oid, oid::int4);
  EXPECT_EQ(r.columns[2].type_size, 4);
  EXPECT_EQ(r.command_tag, "SHOW");
  ASSERT_EQ(r.rows.size(), 1u);
  const Row& row = r.rows[0];
  EXPECT_EQ(row[0], "appdb");
  EXPECT_EQ(row[2], "3");
  EXPECT_EQ(row[3], "2");
  EXPECT_EQ(row[9], "4");
  EXPECT_EQ(row[13], "2");
  EXPECT_EQ(row[14], "500000");
  EXPECT_EQ(row[15], "transaction");
  EXPECT_FALSE(row[16].has_value());  // NULL unless several hosts
}

TEST(AdminShow, ClientsAndServers) {
  setenv("TZ", "UTC", 1);
  tzset();
  SocketRow c;
  c.user = "app";
  c.database = "appdb";
  c.state = "active";
  c.addr = "127.0.0.1";
  c.port = 50000;
  c.local_addr = "127.0.0.1";
  c.local_port = 6432;
  c.connect_time_us = 1'700'000'000'000'000;
  c.request_time_us = 1'700'000'001'000'000;
  c.wait_us = 1'000'123;
  c.ptr = "0x1";
  c.id = 7;
  c.application_name = "psql";
  ResultSet r = show_clients({c});
  EXPECT_EQ(names(r), (std::vector<std::string>{
                          "type", "user", "database", "replication", "state", "addr", "port",
                          "local_addr", "local_port", "connect_time", "request_time", "wait",
                          "wait_us", "close_needed", "ptr", "link", "remote_pid", "tls",
                          "application_name", "prepared_statements", "id"}));
  const Row& row = r.rows.at(0);
  EXPECT_EQ(row[0], "C");
  EXPECT_EQ(row[3], "none");
  EXPECT_EQ(row[9], "2023-11-14 22:13:20 UTC");
  EXPECT_EQ(row[10], "2023-11-14 22:13:21 UTC");
  EXPECT_EQ(row[11], "1");
  EXPECT_EQ(row[12], "123");
  EXPECT_EQ(row[15], "");
  EXPECT_EQ(row[20], "7");
  EXPECT_EQ(r.columns[9].type_oid, oid::text);
  EXPECT_EQ(show_servers({c}).rows.at(0)[0], "S");
}

TEST(AdminShow, DatabasesAndUsers) {
  DatabaseRow d;
  d.name = "appdb";
  d.host = "127.0.0.1";
  d.port = 5432;
  d.database = "appdb";
  d.pool_size = 20;
  d.paused = true;
  ResultSet r = show_databases({d});
  EXPECT_EQ(names(r), (std::vector<std::string>{
                          "name", "host", "port", "database", "force_user", "pool_size",
                          "min_pool_size", "reserve_pool_size", "server_lifetime", "pool_mode",
                          "load_balance_hosts", "max_connections", "current_connections",
                          "max_client_connections", "current_client_connections", "paused",
                          "disabled"}));
  EXPECT_FALSE(r.rows[0][4].has_value());
  EXPECT_FALSE(r.rows[0][9].has_value());
  EXPECT_EQ(r.rows[0][15], "1");

  UserRow u;
  u.name = "app";
  u.pool_size = 5;
  ResultSet ur = show_users({u});
  EXPECT_EQ(names(ur), (std::vector<std::string>{
                           "name", "pool_size", "reserve_pool_size", "pool_mode",
                           "max_user_connections", "current_connections",
                           "max_user_client_connections", "current_client_connections"}));
  EXPECT_EQ(ur.rows[0][1], "        5");
  EXPECT_EQ(ur.rows[0][2], "");
  EXPECT_FALSE(ur.rows[0][3].has_value());
}

TEST(AdminShow, StatsFamilies) {
  StatsRow st;
  st.database = "appdb";
  st.totals.xact_count = 10;
  st.totals.bytes_received = 1000;
  st.averages.xact_count = 2;
  ResultSet r = show_stats({st});
  ASSERT_EQ(r.columns.size(), 25u);
  EXPECT_EQ(r.columns[0].name, "database");
  EXPECT_EQ(r.columns[1].name, "total_server_assignment_count");
  EXPECT_EQ(r.columns[4].name, "total_received");
  EXPECT_EQ(r.columns[16].name, "avg_recv");
  EXPECT_EQ(r.columns[24].name, "avg_client_login_count");
  EXPECT_EQ(r.columns[1].type_oid, oid::numeric);
  EXPECT_EQ(r.rows[0][2], "10");
  EXPECT_EQ(r.rows[0][4], "1000");
  EXPECT_EQ(r.rows[0][14], "2");

  ResultSet t = show_stats_totals({st});
  EXPECT_EQ(names(t), (std::vector<std::string>{
                          "database", "server_assignment_count", "xact_count", "query_count",
                          "bytes_received", "bytes_sent", "xact_time", "query_time",
                          "wait_time", "client_parse_count", "server_parse_count", "bind_count",
                          "client_login_count"}));
  ResultSet a = show_stats_averages({st});
  EXPECT_EQ(a.columns[9].name, "avg_client_parse_count");
  EXPECT_EQ(a.rows[0][2], "2");

  ResultSet tot = show_totals({st, st});
  EXPECT_EQ(names(tot), (std::vector<std::string>{"name", "value"}));
  ASSERT_EQ(tot.rows.size(), 24u);
  EXPECT_EQ(tot.rows[1][0], "total_xact_count");
  EXPECT_EQ(tot.rows[1][1], "20");
  EXPECT_EQ(tot.rows[3][0], "total_client_bytes");
  EXPECT_EQ(tot.rows[12][0], "avg_server_assignment_count");
}

TEST(AdminShow, AveragesLikePgBouncer) {
  StatsCounters old, cur;
  cur.xact_count = 100;
  cur.xact_time = 5000;
  cur.query_count = 50;
  cur.query_time = 1000;
  cur.bytes_sent = 2000;
  StatsCounters avg = compute_averages(cur, old, 2'000'000);  // over 2 s
  EXPECT_EQ(avg.xact_count, 50u);
  EXPECT_EQ(avg.xact_time, 50u);
  EXPECT_EQ(avg.query_count, 25u);
  EXPECT_EQ(avg.query_time, 20u);
  EXPECT_EQ(avg.bytes_sent, 1000u);
  EXPECT_EQ(avg.wait_time, 0u);
  EXPECT_EQ(compute_averages(cur, old, 0).xact_count, 0u);
}

TEST(AdminShow, SmallResultSets) {
  EXPECT_EQ(names(show_config({{"pool_mode", "transaction", "session", true}})),
            (std::vector<std::string>{"key", "value", "default", "changeable"}));
  EXPECT_EQ(show_config({{"listen_port", "6432", "6432", false}}).rows[0][3], "no");
  ResultSet l = show_lists(ListsRow{});
  EXPECT_EQ(names(l), (std::vector<std::string>{"list", "items"}));
  EXPECT_EQ(l.rows.size(), 14u);
  EXPECT_EQ(l.rows[0][0], "databases");
  EXPECT_EQ(names(show_mem({})), (std::vector<std::string>{"name", "size", "used", "free", "memtotal"}));
  ResultSet v = show_version(version_string());
  EXPECT_EQ(names(v), std::vector<std::string>{"version"});
  EXPECT_NE(v.rows[0][0]->find("PgBouncer 1.24"), std::string::npos);
  ResultSet s = show_state(true, false);
  EXPECT_EQ(s.rows[0][1], "no");
  EXPECT_EQ(s.rows[1][1], "yes");
  ResultSet h = show_help();
  EXPECT_TRUE(h.columns.empty());
  EXPECT_EQ(h.notices.at(0).message, "Console usage");
  ResultSet p = show_param("client_encoding");
  EXPECT_EQ(p.columns.at(0).name, "client_encoding");
  EXPECT_EQ(p.rows.at(0)[0], "UTF-8");
}

TEST(AdminConsole, ShowAsksThePoolerForTheRightSnapshot) {
  FakeTarget b;
  PoolRow pool;
  pool.database = "appdb";
  pool.user = "app";
  b.snap.pools.push_back(pool);
  Console console(b);
  std::optional<Reply> got;
  console.execute("show pools;", false, [&](Reply r) { got = std::move(r); });
  ASSERT_TRUE(got && got->ok());
  EXPECT_EQ(b.asked, Show::pools);
  EXPECT_EQ(got->result->rows.size(), 1u);
}

TEST(AdminConsole, StatsUsersCannotControl) {
  FakeTarget b;
  Console console(b);
  std::optional<Reply> got;
  console.execute("PAUSE", false, [&](Reply r) { got = std::move(r); });
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->ok());
  EXPECT_EQ(got->error, "admin access needed");
  EXPECT_TRUE(b.calls.empty());
}

TEST(AdminConsole, PauseRepliesWhenThePoolerIsDone) {
  FakeTarget b;
  Console console(b);
  std::optional<Reply> got;
  console.execute("pause appdb", true, [&](Reply r) { got = std::move(r); });
  EXPECT_FALSE(got);  // still waiting for server connections
  ASSERT_EQ(b.calls, std::vector<std::string>{"pause:appdb"});
  b.pending("");
  ASSERT_TRUE(got && got->ok());
  EXPECT_EQ(got->result->command_tag, "PAUSE");
  EXPECT_TRUE(got->result->columns.empty());
}

TEST(AdminConsole, PoolerErrorsReachTheClient) {
  FakeTarget b;
  b.fail_with = "pooler is not paused/suspended";
  Console console(b);
  std::optional<Reply> got;
  console.execute("RESUME", true, [&](Reply r) { got = std::move(r); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->error, "pooler is not paused/suspended");
  EXPECT_EQ(got->sqlstate, "08P01");
}

TEST(AdminConsole, OtherCommandsAndDefaults) {
  FakeTarget b;
  Console console(b);
  std::vector<Reply> replies;
  auto keep = [&](Reply r) { replies.push_back(std::move(r)); };
  console.execute("reload", true, keep);
  console.execute("KILL appdb", true, keep);
  console.execute("shutdown", true, keep);
  console.execute("suspend", true, keep);               // default: not supported
  console.execute("set client_encoding = 'UTF8'", false, keep);
  console.execute("show fds", true, keep);
  console.execute("bogus", true, keep);
  ASSERT_EQ(replies.size(), 7u);
  EXPECT_EQ(replies[0].result->command_tag, "RELOAD");
  EXPECT_EQ(replies[1].result->command_tag, "KILL");
  EXPECT_EQ(replies[2].result->command_tag, "SHUTDOWN");
  EXPECT_FALSE(replies[3].ok());
  EXPECT_EQ(replies[4].result->command_tag, "SET");
  EXPECT_EQ(replies[4].result->notices.at(0).message, "SET ignored");
  EXPECT_FALSE(replies[5].ok());
  EXPECT_EQ(replies[6].error, "invalid command 'bogus', use SHOW HELP;");
  EXPECT_EQ(b.calls, (std::vector<std::string>{"reload", "kill:appdb", "shutdown:"}));
}

TEST(AdminShow, ConfigRowsFromTheRunningConfig) {
  pgcohere::config::Config cfg;
  cfg.daemon.default_pool_size = 42;
  cfg.redis.url = "redis://:hunter2@127.0.0.1:6379/0";
  std::vector<ConfigRow> rows = config_rows(cfg);
  auto find = [&](const std::string& key) -> const ConfigRow* {
    for (const auto& r : rows)
      if (r.key == key) return &r;
    return nullptr;
  };
  ASSERT_TRUE(find("default_pool_size"));
  EXPECT_EQ(find("default_pool_size")->value, "42");
  EXPECT_EQ(find("default_pool_size")->default_value, "20");
  EXPECT_TRUE(find("default_pool_size")->changeable);
  ASSERT_TRUE(find("listen_port"));
  EXPECT_FALSE(find("listen_port")->changeable);
  ASSERT_TRUE(find("redis.url"));
  EXPECT_EQ(find("redis.url")->value, "********");
  ResultSet r = show_config(rows);
  for (const auto& row : r.rows)
    for (const auto& v : row) EXPECT_EQ(v->find("hunter2"), std::string::npos);
}

TEST(AdminParse, CacheCommands) {
  EXPECT_EQ(parse_ok("SHOW CACHE").show, Show::cache);
  EXPECT_EQ(parse_ok("show cache rules;").show, Show::cache_rules);
  auto key = parse_ok("CACHE DELETE 'pgcohere:{app}:e:abc'");
  EXPECT_EQ(key.verb, Verb::cache_delete);
  EXPECT_EQ(key.arg, "key");
  EXPECT_EQ(key.value, "pgcohere:{app}:e:abc");
  auto pattern = parse_ok("cache delete pattern '*'");
  EXPECT_EQ(pattern.arg, "pattern");
  EXPECT_EQ(pattern.value, "*");
  auto table = parse_ok("CACHE DELETE TABLE 'public.messages'");
  EXPECT_EQ(table.arg, "table");
  EXPECT_EQ(table.value, "public.messages");
  EXPECT_EQ(parse_ok("CACHE DELETE TABLE messages").value, "messages");
  EXPECT_FALSE(parse_command("CACHE").command);
  EXPECT_FALSE(parse_command("CACHE DELETE").command);
  EXPECT_FALSE(parse_command("CACHE PURGE 'x'").command);
  EXPECT_FALSE(parse_command("SHOW CACHE FOO").command);
  EXPECT_TRUE(requires_admin(parse_ok("CACHE DELETE PATTERN '*'")));
  EXPECT_FALSE(requires_admin(parse_ok("SHOW CACHE")));
  EXPECT_TRUE(requires_admin(parse_ok("SET cache_bypass = 1")));
}

TEST(AdminShow, CacheColumnsAndRatio) {
  Snapshot snap;
  CacheRow row;
  row.database = "app";
  row.hits = 3;
  row.misses = 1;
  row.bypassed = 2;
  row.health = "ok";
  snap.cache.push_back(row);
  auto r = build_show(Show::cache, snap, "");
  auto cols = names(r);
  for (const char* want : {"database", "hits", "misses", "stores", "stale_refused", "bypassed", "invalidations",
                           "bytes", "evictions", "hit_ratio", "total_requests", "health"})
    EXPECT_NE(std::find(cols.begin(), cols.end(), want), cols.end()) << want;
  ASSERT_EQ(r.rows.size(), 1u);
  auto at = [&](const char* name) { return *r.rows[0][std::find(cols.begin(), cols.end(), name) - cols.begin()]; };
  EXPECT_EQ(at("hit_ratio"), "0.7500");
  EXPECT_EQ(at("total_requests"), "6");
  EXPECT_EQ(r.columns.size(), r.rows[0].size());
}

TEST(AdminConsole, CacheCommandsWithoutACacheSayItIsNotEnabled) {
  FakeTarget b;
  Console c(b);
  Reply got;
  c.execute("CACHE DELETE PATTERN '*'", true, [&](Reply r) { got = std::move(r); });
  EXPECT_FALSE(got.ok());
  EXPECT_NE(got.error.find("not enabled"), std::string::npos);
  b.snap.cache_error = "the query cache is not enabled ([cache] enabled = 1)";
  c.execute("SHOW CACHE", false, [&](Reply r) { got = std::move(r); });
  EXPECT_FALSE(got.ok());
  EXPECT_EQ(b.asked, Show::cache);
}
