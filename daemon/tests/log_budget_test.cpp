// The failed-login log line is rate-limited: a flood writes a bounded number of lines a
// second and the next line written says how many were held back.
#include <gtest/gtest.h>

#include "util/log_budget.h"

using pgcohere::log::Budget;
using namespace std::chrono_literals;

TEST(LogBudget, AdmitsUpToItsBudgetInOneSecondThenHoldsBack) {
  Budget b(3);
  auto t = Budget::Clock::time_point{} + 100s;
  std::uint64_t held = 99;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(b.admit(t + i * 10ms, held));
    EXPECT_EQ(held, 0u);
  }
  EXPECT_FALSE(b.admit(t + 50ms, held));
  EXPECT_FALSE(b.admit(t + 999ms, held));
}

TEST(LogBudget, TheFirstRecordOfTheNextSecondReportsHowManyWereHeldBack) {
  Budget b(2);
  auto t = Budget::Clock::time_point{} + 100s;
  std::uint64_t held = 0;
  b.admit(t, held);
  b.admit(t, held);
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(b.admit(t + 500ms, held));
  EXPECT_TRUE(b.admit(t + 1s, held));
  EXPECT_EQ(held, 7u);
  EXPECT_TRUE(b.admit(t + 1100ms, held));
  EXPECT_EQ(held, 0u);  // reported once, not again
}

TEST(LogBudget, QuietTrafficIsNeverHeldBack) {
  Budget b(1);
  auto t = Budget::Clock::time_point{} + 100s;
  std::uint64_t held = 0;
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(b.admit(t + i * 1500ms, held));
    EXPECT_EQ(held, 0u);
  }
}
