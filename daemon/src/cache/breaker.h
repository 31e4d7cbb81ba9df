// The cache's circuit breaker: after a few consecutive Redis failures or timeouts it
// opens (the cache is skipped and PostgreSQL answers), and it closes again once a PING
// answers. Pure: time is passed in.
#pragma once

#include <chrono>
#include <cstdint>

namespace pgcohere::cache {

class Breaker {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Breaker(int failures_to_open = 3, Clock::duration probe_every = std::chrono::milliseconds(500))
      : failures_to_open_(failures_to_open), probe_every_(probe_every) {}

  bool open() const { return open_; }
  // A cache operation answered in time.
  void succeeded() { consecutive_failures_ = 0; }
  // A cache operation failed or timed out.
  void failed(Clock::time_point now) {
    if (open_) return;
    if (++consecutive_failures_ >= failures_to_open_) {
      open_ = true;
      ++times_opened_;
      last_probe_ = now;
    }
  }
  // While open: whether a PING should be sent now (at most one per probe period).
  bool probe_due(Clock::time_point now) {
    if (!open_ || now - last_probe_ < probe_every_) return false;
    last_probe_ = now;
    return true;
  }
  // The PING answered: close.
  void probe_answered() {
    open_ = false;
    consecutive_failures_ = 0;
  }
  std::uint64_t times_opened() const { return times_opened_; }

 private:
  int failures_to_open_;
  Clock::duration probe_every_;
  bool open_ = false;
  int consecutive_failures_ = 0;
  Clock::time_point last_probe_{};
  std::uint64_t times_opened_ = 0;
};

}  // namespace pgcohere::cache
