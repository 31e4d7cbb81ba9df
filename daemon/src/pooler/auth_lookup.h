// auth_query (PgBouncer's auth_user): the secret of a user who is not in auth_file is
// looked up in PostgreSQL by auth_query, on a short connection logged in as auth_user with
// that user's auth_file credentials. Results are kept auth_query_cache_ttl seconds, and
// concurrent logins of one user share one query.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/secret_cache.h"
#include "auth/userlist.h"
#include "net/wakeup.h"
#include "pool/target.h"

namespace pgcohere::pooler {

class Pooler;

// Where and how one lookup runs.
struct AuthQuery {
  pool::Target target;  // host, port and dbname of the database the query runs in
  std::string auth_user;
  std::string query;  // $1 is the user name
};

class AuthLookup {
 public:
  struct Result {
    // The user's secret; nullopt without an error: no such user, or one without a password.
    std::optional<auth::UserEntry> entry;
    std::string error;  // the lookup itself failed (the server's or the network's reason)
  };

  explicit AuthLookup(Pooler& pooler) : pooler_(pooler) {}
  boost::asio::awaitable<Result> find(const AuthQuery& q, const std::string& user);
  // RELOAD: auth_query, auth_user or passwords may have changed.
  void clear_cache() { cache_.clear(); }
  std::uint64_t queries() const { return queries_; }

 private:
  boost::asio::awaitable<Result> run(AuthQuery q, std::string user);

  struct Flight {
    std::optional<Result> result;
    std::vector<std::shared_ptr<net::Wakeup>> waiters;
  };
  Pooler& pooler_;
  auth::SecretCache cache_;
  std::map<std::string, std::shared_ptr<Flight>> flights_;
  std::uint64_t queries_ = 0;
};

}  // namespace pgcohere::pooler
