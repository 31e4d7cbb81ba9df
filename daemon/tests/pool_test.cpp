// The pure pool: idle reuse, waiting clients served in order, connection limits.
#include <gtest/gtest.h>

#include <memory>
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
