// The pure pool: idle reuse, waiting clients served in order, connection limits.
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "pool/pool.h"

namespace {
struct FakeServer {
  int id;
  bool closed = false;
  void close() { closed = true; }
};
struct FakeClient {
  std::shared_ptr<FakeServer> got;
  std::string failed;
  void grant(std::shared_ptr<FakeServer> s) { got = std::move(s); }
  void fail(const std::string& why) { failed = why; }
};
using TestPool = pgcohere::pool::Pool<FakeServer, FakeClient>;
}  // namespace

TEST(Pool, LaunchesUpToPoolSizeAndServesWaitersInOrder) {
  TestPool p("db", "u", {2, 0, 0});
  int launches = 0;
  p.set_launcher([&] { launches++; });
  FakeClient a, b, c;
  EXPECT_EQ(p.try_acquire(), nullptr);
  p.wait(&a);
  p.wait(&b);
  p.wait(&c);
  EXPECT_EQ(launches, 2);  // never more than pool_size
  auto s1 = std::make_shared<FakeServer>(FakeServer{1});
  auto s2 = std::make_shared<FakeServer>(FakeServer{2});
  p.connected(s1);
  p.connected(s2);
  EXPECT_EQ(a.got, s1);
  EXPECT_EQ(b.got, s2);
  EXPECT_EQ(c.got, nullptr);
  EXPECT_EQ(p.waiting(), 1u);
  p.release(a.got);  // handed straight to the next waiter
  EXPECT_EQ(c.got, s1);
  p.release(b.got);
  p.release(c.got);
  EXPECT_EQ(p.idle_count(), 2);
  EXPECT_EQ(p.active(), 0);
  auto again = p.try_acquire();
  EXPECT_EQ(again, s1);  // most recently released first
}

TEST(Pool, FailedConnectFailsWaitersWhenNothingElseCanServeThem) {
  TestPool p("db", "u", {1, 0, 0});
  p.set_launcher([] {});
  FakeClient a;
  p.wait(&a);
  p.connect_failed("server down");
  EXPECT_EQ(a.failed, "server down");
  EXPECT_EQ(p.total(), 0);
}

TEST(Pool, CancelledWaiterIsSkipped) {
  TestPool p("db", "u", {1, 0, 0});
  p.set_launcher([] {});
  FakeClient a, b;
  p.wait(&a);
  p.wait(&b);
  p.cancel(&a);
  p.connected(std::make_shared<FakeServer>(FakeServer{1}));
  EXPECT_EQ(a.got, nullptr);
  ASSERT_NE(b.got, nullptr);
}

TEST(Pool, ShrinkingClosesSurplusConnections) {
  TestPool p("db", "u", {3, 0, 0});
  p.set_launcher([] {});
  std::vector<FakeClient> clients(3);
  for (auto& c : clients) p.wait(&c);
  for (int i = 0; i < 3; ++i) p.connected(std::make_shared<FakeServer>(FakeServer{i}));
  p.release(clients[0].got);
  p.set_limits({1, 0, 0});
  auto surplus = p.take_surplus_idle();
  EXPECT_EQ(surplus.size(), 1u);
  auto s = clients[1].got;
  p.release(s);  // still over the new size: closed instead of kept
  EXPECT_TRUE(s->closed);
  EXPECT_EQ(p.total(), 1);
}

TEST(Pool, AdmissionLimitsLaunches) {
  TestPool p("db", "u", {5, 0, 0});
  int launches = 0;
  p.set_launcher([&] { launches++; });
  p.set_admission([&] { return launches < 1; });
  FakeClient a, b;
  p.wait(&a);
  p.wait(&b);
  EXPECT_EQ(launches, 1);
}

// server_check_query: connections the owner marks as due are checked before a client
// gets them; the check is promised to a waiter, and a failed one is replaced.
namespace {
struct CheckedPool {
  TestPool p{"db", "u", {2, 0, 0}};
  int launches = 0;
  std::set<const FakeServer*> due;
  std::vector<std::shared_ptr<FakeServer>> checking;
  CheckedPool() {
    p.set_launcher([this] { launches++; });
    p.set_checker([this](const FakeServer& s) { return due.count(&s) > 0; },
                  [this](std::shared_ptr<FakeServer> s) { checking.push_back(std::move(s)); });
  }
  // One connection, opened for a first client and then idle.
  std::shared_ptr<FakeServer> idle_one(int id) {
    FakeClient first;
    p.wait(&first);
    auto s = std::make_shared<FakeServer>(FakeServer{id});
    p.connected(s);
    p.release(first.got);
    return s;
  }
  // The owner's side of a finished check.
  void pass(const std::shared_ptr<FakeServer>& s) {
    due.erase(s.get());
    checking.erase(std::find(checking.begin(), checking.end(), s));
    p.checked(s);
  }
};
}  // namespace

TEST(PoolCheck, DueConnectionIsCheckedBeforeAClientGetsIt) {
  CheckedPool cp;
  auto s1 = cp.idle_one(1);
  EXPECT_EQ(cp.p.try_acquire(), s1);  // not due: handed out at once
  cp.p.release(s1);
  cp.due.insert(s1.get());
  FakeClient b;
  EXPECT_EQ(cp.p.try_acquire(), nullptr);
  ASSERT_EQ(cp.checking.size(), 1u);
  cp.p.wait(&b);
  EXPECT_EQ(cp.launches, 1);  // the connection under check is promised to b: no new one
  EXPECT_EQ(cp.p.testing(), 1);
  EXPECT_EQ(b.got, nullptr);
  cp.pass(s1);
  EXPECT_EQ(b.got, s1);
  EXPECT_EQ(cp.p.testing(), 0);
  EXPECT_EQ(cp.p.active(), 1);
}

TEST(PoolCheck, FailedCheckTriesTheNextIdleThenOpensANewConnection) {
  CheckedPool cp;
  FakeClient a1, a2;
  cp.p.wait(&a1);
  cp.p.wait(&a2);
  auto s1 = std::make_shared<FakeServer>(FakeServer{1});
  auto s2 = std::make_shared<FakeServer>(FakeServer{2});
  cp.p.connected(s1);
  cp.p.connected(s2);
  cp.p.release(s1);
  cp.p.release(s2);
  cp.due = {s1.get(), s2.get()};
  FakeClient b;
  EXPECT_EQ(cp.p.try_acquire(), nullptr);
  cp.p.wait(&b);
  ASSERT_EQ(cp.checking.size(), 1u);  // one check per waiter
  EXPECT_EQ(cp.checking[0], s2);      // the most recently used first
  cp.checking.clear();
  cp.p.check_failed();  // s2 is closed by the owner
  ASSERT_EQ(cp.checking.size(), 1u);
  EXPECT_EQ(cp.checking[0], s1);
  EXPECT_EQ(cp.launches, 2);  // the two first connections only
  cp.checking.clear();
  cp.p.check_failed();
  EXPECT_EQ(cp.launches, 3);  // nothing idle is left: a new connection for b
  EXPECT_EQ(cp.p.total(), 1);
  auto s3 = std::make_shared<FakeServer>(FakeServer{3});
  cp.p.connected(s3);
  EXPECT_EQ(b.got, s3);
}

TEST(PoolCheck, ReleasedConnectionDueForACheckIsCheckedBeforeTheNextWaiter) {
  CheckedPool cp;
  cp.p.set_limits({1, 0, 0});
  FakeClient a, b;
  cp.p.wait(&a);
  auto s1 = std::make_shared<FakeServer>(FakeServer{1});
  cp.p.connected(s1);
  ASSERT_EQ(a.got, s1);
  cp.p.wait(&b);
  cp.due.insert(s1.get());  // server_check_delay = 0: due at every release
  cp.p.release(s1);
  EXPECT_EQ(b.got, nullptr);
  ASSERT_EQ(cp.checking.size(), 1u);
  cp.pass(s1);
  EXPECT_EQ(b.got, s1);
}

TEST(PoolCheck, CheckedConnectionGoesIdleWhenItsWaiterLeft) {
  CheckedPool cp;
  auto s1 = cp.idle_one(1);
  cp.due.insert(s1.get());
  FakeClient b;
  EXPECT_EQ(cp.p.try_acquire(), nullptr);
  cp.p.wait(&b);
  cp.p.cancel(&b);
  cp.pass(s1);
  EXPECT_EQ(b.got, nullptr);
  EXPECT_EQ(cp.p.idle_count(), 1);
  EXPECT_EQ(cp.p.total(), 1);
}
