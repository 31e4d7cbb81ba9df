#include "util/log_budget.h"

namespace pgcohere::log {

bool Budget::admit(Clock::time_point now, std::uint64_t& held_back) {
  if (used_ == 0 || now - window_start_ >= std::chrono::seconds(1)) {
    window_start_ = now;
    used_ = 0;
  }
  if (used_ >= per_second_) {
    ++held_back_;
    return false;
  }
  ++used_;
  held_back = held_back_;
  held_back_ = 0;
  return true;
}

}  // namespace pgcohere::log
