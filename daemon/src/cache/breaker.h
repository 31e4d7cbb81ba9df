// The cache's circuit breaker: it opens (the cache is skipped and PostgreSQL answers) after
// a few consecutive Redis failures or timeouts when nothing has answered for a while, and
// closes again once a PING answers. The quiet span tells a Redis that is gone (every
// operation fails, for as long as it is away) from one stall of the machine (the
// operations in flight time out together, and the next ones answer): on a CPU-starved
// machine an open breaker would send every read to an equally starved PostgreSQL.
// Pure: time is passed in.
#pragma once

#include <chrono>
#include <cstdint>

namespace pgcohere::cache {

class Breaker {
 public:
  using Clock = std::chrono::steady_clock;
  Breaker(int failures_to_open, Clock::duration quiet_span, Clock::duration probe_every)
      : failures_to_open_(failures_to_open), quiet_span_(quiet_span), probe_every_(probe_every) {}

  bool open() const { return open_; }
  // A cache operation answered in time.
  void succeeded(Clock::time_point now) {
    consecutive_failures_ = 0;
    last_success_ = now;
  }
  // A cache operation failed or timed out.
  void failed(Clock::time_point now) {
    if (open_) return;
    if (++consecutive_failures_ >= failures_to_open_ && now - last_success_ >= quiet_span_) {
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
  Clock::duration quiet_span_;
  Clock::duration probe_every_;
  bool open_ = false;
  int consecutive_failures_ = 0;
  Clock::time_point last_probe_{};
  Clock::time_point last_success_{};  // never: a Redis down from the start opens it at once
  std::uint64_t times_opened_ = 0;
};

}  // namespace pgcohere::cache
