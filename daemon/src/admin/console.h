// The admin console: one simple-query string in, one reply out, acting through a ConsoleTarget.
// No I/O; the pool's session code encodes the reply (RowDescription, DataRow,
// CommandComplete, NoticeResponse or ErrorResponse, then ReadyForQuery).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "admin/console_target.h"
#include "admin/result_set.h"

namespace pgcohere::admin {

struct Reply {
  std::optional<ResultSet> result;  // set on success
  std::string error;                // ErrorResponse message otherwise
  std::string sqlstate = "08P01";   // PgBouncer's code for console errors
  bool ok() const { return result.has_value(); }
};

class Console {
 public:
  explicit Console(ConsoleTarget& target) : target_(target) {}
  // `admin_user`: the login is in admin_users (else stats_users: SHOW only). `reply` is
  // called exactly once, possibly later (PAUSE waits for the pool).
  void execute(std::string_view query, bool admin_user, std::function<void(Reply)> reply);

 private:
  ConsoleTarget& target_;
};

}  // namespace pgcohere::admin
