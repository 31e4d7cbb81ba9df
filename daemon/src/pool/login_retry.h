// Fail fast when a pool cannot log in to PostgreSQL (PgBouncer's server_login_retry): after
// a failed server login, and until the next successful one, clients that would have to
// wait for a new server connection get the failure's reason at once instead of waiting
// out query_wait_timeout, and no new login is tried for server_login_retry seconds. Pure:
// time is passed in.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace pgcohere::pool {

class LoginRetry {
 public:
  using Clock = std::chrono::steady_clock;

  // A server login failed (refused, timed out, or rejected by the server) with `reason`.
  void failed(Clock::time_point now, std::string reason) {
    failed_at_ = now;
    reason_ = std::move(reason);
  }
  // A server login succeeded: service is back.
  void succeeded() { reason_.reset(); }

  bool failing() const { return reason_.has_value(); }
  const std::string& reason() const { return *reason_; }

  // Whether a new server login may be tried now: always while logins work, else only once
  // server_login_retry seconds have passed since the last failure.
  bool may_try(Clock::time_point now, double retry_seconds) const {
    return !reason_ || std::chrono::duration<double>(now - failed_at_).count() >= retry_seconds;
  }
  // The error a client that needs a new server connection gets now, if any: the last
  // failure's reason while no login may be tried yet.
  std::optional<std::string> refusal(Clock::time_point now, double retry_seconds) const {
    if (may_try(now, retry_seconds)) return std::nullopt;
    return *reason_;
  }

 private:
  std::optional<std::string> reason_;
  Clock::time_point failed_at_{};
};

}  // namespace pgcohere::pool
