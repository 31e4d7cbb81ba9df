// The cluster slot map: any change of a slot's owner is a topology change (a running
// pattern pass starts over); the same map listed again is not.
#include "redis/slot_map.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

using pgcohere::redis::Reply;
using pgcohere::redis::SlotMap;

namespace {
Reply str(std::string s) {
  Reply r;
  r.type = Reply::Type::string;
  r.str = std::move(s);
  return r;
}
Reply num(long long n) {
  Reply r;
  r.type = Reply::Type::integer;
  r.integer = n;
  return r;
}
Reply arr(std::vector<Reply> elements) {
  Reply r;
  r.type = Reply::Type::array;
  r.elements = std::move(elements);
  return r;
}
// CLUSTER SLOTS: [[lo, hi, [host, port, id]], ...]
Reply slots(const std::vector<std::tuple<int, int, std::string, int>>& ranges) {
  std::vector<Reply> out;
  for (const auto& [lo, hi, host, port] : ranges)
    out.push_back(arr({num(lo), num(hi), arr({str(host), num(port), str("id")})}));
  return arr(std::move(out));
}
const std::string A = "127.0.0.1:7001", B = "127.0.0.1:7002", C = "127.0.0.1:7003";
Reply three() {
  return slots({{0, 5460, "127.0.0.1", 7001}, {5461, 10922, "127.0.0.1", 7002}, {10923, 16383, "127.0.0.1", 7003}});
}
}  // namespace

TEST(SlotMap, FirstMapIsAChangeTheSameMapAgainIsNot) {
  SlotMap m;
  EXPECT_EQ(m.owner(0), nullptr);
  EXPECT_TRUE(m.assign(three(), "ignored"));
  EXPECT_EQ(*m.owner(0), A);
  EXPECT_EQ(*m.owner(5461), B);
  EXPECT_EQ(*m.owner(16383), C);
  EXPECT_EQ(m.primaries(), (std::vector<std::string>{A, B, C}));
  EXPECT_FALSE(m.assign(three(), "ignored"));
}

TEST(SlotMap, ReshardAmongTheSamePrimariesIsAChange) {
  // The bug this guards against: only a change of the set of primaries used to count, so a
  // slot moving from A to B during a pattern pass went unnoticed.
  SlotMap m;
  m.assign(three(), "");
  EXPECT_TRUE(m.assign(slots({{0, 99, "127.0.0.1", 7001},
                              {100, 100, "127.0.0.1", 7002},
                              {101, 5460, "127.0.0.1", 7001},
                              {5461, 10922, "127.0.0.1", 7002},
                              {10923, 16383, "127.0.0.1", 7003}}),
                       ""));
  EXPECT_EQ(*m.owner(100), B);
  EXPECT_EQ(*m.owner(101), A);
}

TEST(SlotMap, SameOwnersListedInAnotherOrderIsNoChange) {
  SlotMap m;
  m.assign(three(), "");
  EXPECT_FALSE(m.assign(slots({{10923, 16383, "127.0.0.1", 7003},
                               {0, 5460, "127.0.0.1", 7001},
                               {5461, 10922, "127.0.0.1", 7002}}),
                        ""));
  EXPECT_EQ(*m.owner(0), A);
  EXPECT_EQ(*m.owner(16383), C);
}

TEST(SlotMap, SlotLosingItsOwnerIsAChange) {
  SlotMap m;
  m.assign(three(), "");
  EXPECT_TRUE(m.assign(slots({{0, 5460, "127.0.0.1", 7001}, {5461, 10922, "127.0.0.1", 7002}}), ""));
  EXPECT_EQ(m.owner(10923), nullptr);
  EXPECT_FALSE(m.is_primary(C));
}

TEST(SlotMap, MovedUpdatesOneSlot) {
  SlotMap m;
  m.assign(three(), "");
  EXPECT_FALSE(m.move(42, A));  // already there
  EXPECT_TRUE(m.move(42, C));
  EXPECT_EQ(*m.owner(42), C);
  EXPECT_EQ(*m.owner(41), A);
  const std::string D = "127.0.0.1:7004";
  EXPECT_TRUE(m.move(43, D));  // a node we did not know yet
  EXPECT_TRUE(m.is_primary(D));
  EXPECT_EQ(*m.owner(43), D);
  EXPECT_FALSE(m.move(-1, A));
  EXPECT_FALSE(m.move(16384, A));
}

TEST(SlotMap, EmptyHostMeansTheNodeWeAsked) {
  SlotMap m;
  m.assign(slots({{0, 16383, "", 7001}}), "10.1.2.3");
  EXPECT_EQ(*m.owner(7), "10.1.2.3:7001");
}
