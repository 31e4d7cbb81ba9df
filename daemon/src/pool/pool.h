// One pool per (database, user): idle server connections, how many exist or are being
// opened, and the clients waiting for one, served first come first served. No sockets
// and no clocks: the owner opens connections when told to (launch), and reports back.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pgcohere::pool {

struct PoolLimits {
  int pool_size = 20;        // default_pool_size or the database's pool_size
  int min_pool_size = 0;
  int reserve_pool_size = 0;
};

// Server: the connection type (the net layer's); Waiter: what a waiting client exposes.
// A connection handed out is "active" until release(); one the owner must check first
// (server_check_query) is "testing" until checked() or check_failed().
// Server must have close(); Waiter must have grant(std::shared_ptr<Server>) and
// fail(const std::string&).
template <typename Server, typename Waiter>
class Pool {
 public:
  using ServerPtr = std::shared_ptr<Server>;

  Pool(std::string database, std::string user, PoolLimits limits)
      : database_(std::move(database)), user_(std::move(user)), limits_(limits) {}

  // Called when a new server connection must be opened; the owner later calls
  // connected() or connect_failed() exactly once.
  void set_launcher(std::function<void()> launch) { launch_ = std::move(launch); }
  // Checked before opening: may a connection be opened (max_db_connections etc.)?
  void set_admission(std::function<bool()> admit) { admit_ = std::move(admit); }
  // server_check_query: `due` says whether a connection must be checked before a client
  // gets it; `check` starts that check, and the owner later calls checked() or
  // check_failed() exactly once (never from inside `check`).
  void set_checker(std::function<bool(const Server&)> due, std::function<void(ServerPtr)> check) {
    check_due_ = std::move(due);
    check_ = std::move(check);
  }

  const std::string& database() const { return database_; }
  const std::string& user() const { return user_; }
  const PoolLimits& limits() const { return limits_; }
  void set_limits(PoolLimits l) {
    limits_ = l;
    launch_for_waiters();
  }

  // PAUSE: no connection is handed out until resume(); clients queue up.
  void pause() { paused_ = true; }
  void resume() {
    paused_ = false;
    serve_waiters();
  }
  bool paused() const { return paused_; }

  // An idle connection now, or nullptr: then call wait(). A connection that is due for
  // a check is checked first and goes to the first waiter afterwards.
  ServerPtr try_acquire() {
    if (paused_ || idle_.empty() || !waiters_.empty()) return nullptr;
    if (check_due_ && check_due_(*idle_.back())) {
      start_check();
      return nullptr;
    }
    ServerPtr s = std::move(idle_.back());  // most recently used: warm caches, others can age out
    idle_.pop_back();
    active_++;
    return s;
  }
  void wait(Waiter* w) {
    waiters_.push_back(w);
    serve_waiters();
  }
  // A waiter gave up (timeout, disconnect).
  void cancel(Waiter* w) {
    auto it = std::find(waiters_.begin(), waiters_.end(), w);
    if (it != waiters_.end()) waiters_.erase(it);
  }

  // A client is done with an active connection that is clean and reusable.
  void release(ServerPtr s) {
    active_--;
    offer(std::move(s));
  }
  // An active connection will be closed instead of released.
  void discard_active() {
    active_--;
    total_--;
    launch_for_waiters();
  }
  // An idle connection went away (closed by the server, lifetime, idle timeout).
  bool remove_idle(Server* s) {
    auto it = std::find_if(idle_.begin(), idle_.end(), [&](const ServerPtr& p) { return p.get() == s; });
    if (it == idle_.end()) return false;
    idle_.erase(it);
    total_--;
    launch_for_waiters();
    return true;
  }
  void connected(ServerPtr s) {
    connecting_--;
    offer(std::move(s));
  }
  // The check passed: the connection serves the first waiter, or goes idle.
  void checked(ServerPtr s) {
    testing_--;
    offer(std::move(s));
  }
  // The check failed and the owner closes the connection: waiters get another one.
  void check_failed() {
    testing_--;
    total_--;
    serve_waiters();
  }
  void connect_failed(const std::string& why) {
    connecting_--;
    total_--;
    // Without any connection to wait for, waiting clients would hang: fail them now
    // (PgBouncer does the same once its login retry is exhausted).
    if (total_ == 0) {
      auto waiting = std::move(waiters_);
      waiters_.clear();
      for (Waiter* w : waiting) w->fail(why);
    }
  }

  // Idle connections past `keep` (pool shrunk by a reload): the caller closes them.
  std::vector<ServerPtr> take_surplus_idle() {
    std::vector<ServerPtr> out;
    while (total_ > limits_.pool_size + limits_.reserve_pool_size && !idle_.empty()) {
      out.push_back(std::move(idle_.front()));
      idle_.pop_front();
      total_--;
    }
    return out;
  }
  const std::deque<ServerPtr>& idle() const { return idle_; }

  int active() const { return active_; }
  int idle_count() const { return static_cast<int>(idle_.size()); }
  int connecting() const { return connecting_; }
  int testing() const { return testing_; }
  int total() const { return total_; }
  size_t waiting() const { return waiters_.size(); }
  // Opens connections for waiters if the pool may now (the janitor, once server_login_retry
  // has passed after a failed login: nothing else would ask again).
  void retry_launch() { launch_for_waiters(); }
  const std::deque<Waiter*>& waiters() const { return waiters_; }
  // Opens connections up to min_pool_size (called periodically by the janitor).
  void ensure_min() {
    while (total_ < std::min(limits_.min_pool_size, limits_.pool_size) && launch_one()) {
    }
  }
  // Lets waiters that waited past reserve_pool_timeout use the reserve (janitor).
  void use_reserve() {
    while (waiters_.size() > static_cast<size_t>(connecting_ + testing_) &&
           total_ < limits_.pool_size + limits_.reserve_pool_size && launch_one()) {
    }
  }

 private:
  void offer(ServerPtr s) {
    if (!waiters_.empty() && !paused_) {
      if (check_due_ && check_due_(*s)) {  // server_check_delay = 0: every reuse is checked
        testing_++;
        check_(std::move(s));
        return;
      }
      Waiter* w = waiters_.front();
      waiters_.pop_front();
      active_++;
      w->grant(std::move(s));
      return;
    }
    if (total_ > limits_.pool_size + limits_.reserve_pool_size) {
      total_--;
      s->close();  // the pool shrank (reload)
      return;
    }
    idle_.push_back(std::move(s));
  }
  bool launch_one() {
    if (!launch_ || (admit_ && !admit_())) return false;
    connecting_++;
    total_++;
    launch_();
    return true;
  }
  // The newest idle connection goes to a check (it then serves a waiter).
  void start_check() {
    ServerPtr s = std::move(idle_.back());
    idle_.pop_back();
    testing_++;
    check_(std::move(s));
  }
  // Idle connections to waiters (checked first where due), then new ones for the rest.
  // Each connection being checked or opened is already promised to one waiter.
  void serve_waiters() {
    if (paused_) return;
    while (!idle_.empty() && waiters_.size() > static_cast<size_t>(testing_)) {
      if (check_due_ && check_due_(*idle_.back())) {
        start_check();
        continue;
      }
      ServerPtr s = std::move(idle_.back());
      idle_.pop_back();
      Waiter* w = waiters_.front();
      waiters_.pop_front();
      active_++;
      w->grant(std::move(s));
    }
    launch_for_waiters();
  }
  void launch_for_waiters() {
    if (paused_) return;
    while (waiters_.size() > static_cast<size_t>(connecting_ + testing_) && total_ < limits_.pool_size &&
           launch_one()) {
    }
  }

  std::string database_, user_;
  PoolLimits limits_;
  std::function<void()> launch_;
  std::function<bool()> admit_;
  std::function<bool(const Server&)> check_due_;
  std::function<void(ServerPtr)> check_;
  std::deque<ServerPtr> idle_;
  std::deque<Waiter*> waiters_;
  int active_ = 0;
  int connecting_ = 0;
  int testing_ = 0;
  int total_ = 0;  // idle + active + connecting + testing
  bool paused_ = false;
};

}  // namespace pgcohere::pool
