// The pattern index: a sorted copy of the Redis key names, kept current from keyspace
// notifications (new, del, expired, evicted) and rebuilt by SCAN after any gap, so that a
// pattern purge visits only the keys under the pattern's literal prefix: O(matching keys)
// instead of O(all keys) per pattern. A barrier (PUBLISH to our own channel) makes sure
// every notification Redis sent before the purge started has been applied to the index.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "redis/async_client.h"
#include "redis/sorted_key_names.h"

namespace pgcohere::redis {

class KeyIndex {
 public:
  KeyIndex(boost::asio::io_context& io, const std::string& host, int port, int db,
           std::chrono::milliseconds command_timeout = std::chrono::milliseconds(1000));
  KeyIndex(const KeyIndex&) = delete;
  KeyIndex& operator=(const KeyIndex&) = delete;

  void start();
  void stop();
  // Subscribed, built, and no gap since.
  bool ready() const { return state_ == State::ready; }
  // `done(true)` once every notification sent before this call has reached the index;
  // `done(false)` if the subscription broke meanwhile (then the caller scans instead).
  void barrier(std::function<void(bool)> done);
  std::vector<std::string> match(std::string_view pattern, std::size_t* visited = nullptr) const {
    return keys_.match(pattern, visited);
  }
  void erase(const std::string& key) { keys_.erase(key); }
  std::size_t size() const { return keys_.size(); }
  std::uint64_t rebuilds() const { return rebuilds_; }

 private:
  enum class State { down, subscribing, building, ready };
  void on_subscriber_state(bool up);
  void on_message(const Reply& r);
  void build_step(std::string cursor);
  void broken(const std::string& why);

  int db_;
  std::string event_prefix_;    // "__keyevent@<db>__:"
  std::string barrier_channel_;
  std::shared_ptr<AsyncClient> sub_;
  std::shared_ptr<AsyncClient> cmd_;
  State state_ = State::down;
  std::uint64_t generation_ = 0;  // bumps on every gap: stale build replies are ignored
  SortedKeyNames keys_;
  std::uint64_t next_barrier_ = 1;
  std::map<std::uint64_t, std::function<void(bool)>> barriers_;
  std::uint64_t rebuilds_ = 0;
};

}  // namespace pgcohere::redis
