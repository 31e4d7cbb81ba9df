// A budget of log records per second, for lines an attacker can trigger at will (failed
// logins): a flood costs a bounded amount of log, and the records held back are counted and
// reported with the next one that gets through, so no count is lost. Pure, unit-tested.
#pragma once

#include <chrono>
#include <cstdint>

namespace pgcohere::log {

class Budget {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Budget(int per_second) : per_second_(per_second) {}

  // True if a record may be written now. Then `held_back` is how many were refused since
  // the last one written (0 in the quiet case), for the record to mention.
  bool admit(Clock::time_point now, std::uint64_t& held_back);

 private:
  int per_second_;
  Clock::time_point window_start_{};
  int used_ = 0;  // records written in the window that began at window_start_
  std::uint64_t held_back_ = 0;
};

}  // namespace pgcohere::log
