// The purger: turns invalidations into Redis work. Exact keys go out as pipelined UNLINK
// batches (a key already queued and not yet sent is coalesced); a pattern the prefix index
// can answer goes to its set (O(matching keys)); the other patterns share one SCAN pass
// among everything pending, on their own connection, so a pattern purge never stalls
// exact keys behind it. Work that fails (Redis down) is kept and retried on reconnect.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "redis/backend.h"
#include "invalidation/pattern_index.h"

namespace pgcohere::invalidation {

struct PurgeJob {
  std::vector<std::string> keys;
  std::vector<std::string> patterns;
  // Query-cache tags, each scoped to its database (cache::scope_tag): a new version, and
  // every entry that carries the tag removed (cache/redis_layout.h).
  std::vector<std::string> tags;
};

struct PurgeOptions {
  std::size_t batch_keys = 256;    // keys per UNLINK command
  std::size_t max_in_flight = 16;  // UNLINK batches outstanding on the key connection
  std::size_t scan_count = 1000;   // SCAN COUNT hint
  std::string cache_namespace = "pgcohere:";
};

struct PurgerCounters {
  std::uint64_t keys_sent = 0;       // keys in UNLINK commands that Redis acknowledged
  std::uint64_t keys_removed = 0;    // keys that existed (UNLINK's return value)
  std::uint64_t keys_coalesced = 0;  // requests merged into an already queued key
  std::uint64_t patterns_purged = 0;
  std::uint64_t pattern_keys_removed = 0;
  std::uint64_t scan_passes = 0;
  std::uint64_t index_passes = 0;        // pattern passes answered by the prefix index
  std::uint64_t index_patterns = 0;      // patterns purged through the index
  std::uint64_t index_keys_visited = 0;  // index entries looked at (O(matching keys))
  std::uint64_t tags_invalidated = 0;        // query-cache tags given a new version
  std::uint64_t tagged_entries_removed = 0;  // cache entries those tags removed
  std::uint64_t redis_errors = 0;
};

// Owned by a std::shared_ptr: replies and the retry timer hold a weak_ptr to it.
class Purger : public std::enable_shared_from_this<Purger> {
 public:
  using Done = std::function<void()>;

  // With `index`, a pattern purge uses its set while the index is ready and has a set for
  // the pattern's prefix, and scans otherwise.
  Purger(boost::asio::io_context& io, redis::Backend& backend, PurgeOptions options = {},
         PatternIndex* index = nullptr);
  Purger(const Purger&) = delete;
  Purger& operator=(const Purger&) = delete;

  // Queues the job; `done` runs once every key, pattern and tag of it has been purged.
  // Throws std::logic_error if the purger is not owned by a std::shared_ptr.
  void submit(PurgeJob job, Done done = {});
  // Call when a connection comes back: resumes work that waited for Redis.
  void resume();
  // While held, submit() only queues; the last release() sends everything queued in one
  // go (one UNLINK for the keys of every notification read together, in one write).
  // Hold only for synchronous work: nothing is sent until the release.
  void hold() { ++held_; }
  void release_hold();
  // Forgets queued work (its jobs never complete): the caller replaces it with a resync.
  void drop_all();

  const PurgerCounters& counters() const { return counters_; }
  std::size_t queued_keys() const { return key_queue_.size(); }
  std::size_t pending_patterns() const {
    return pending_patterns_.size() + pass_patterns_.size() + index_pending_.size() + index_pass_.size();
  }
  bool idle() const;

 private:
  struct Job {
    std::size_t outstanding = 0;
    Done done;
  };
  using JobRef = std::shared_ptr<Job>;
  using Waiters = std::vector<JobRef>;

  void release(const Waiters& waiters);
  void queue_key(const std::string& key, const JobRef& job);
  void pump_keys();
  void pump_patterns();
  void scan_step(const std::string& shard);
  void maybe_finish_pass();
  void pump_index();
  void finish_pass();
  void pump_tags();
  void retry_later();

  std::size_t held_ = 0;
  boost::asio::steady_timer retry_timer_;
  redis::Backend& backend_;
  PatternIndex* index_;
  PurgeOptions options_;
  PurgerCounters counters_;

  std::deque<std::string> key_queue_;
  std::unordered_map<std::string, Waiters> queued_;  // key -> jobs waiting on it
  std::size_t batches_in_flight_ = 0;

  std::unordered_map<std::string, Waiters> pending_patterns_;  // waiting for the next pass
  std::unordered_map<std::string, Waiters> pass_patterns_;     // in the running pass
  bool pass_running_ = false;
  bool pass_failed_ = false;
  std::string pass_match_;
  std::uint64_t pass_topology_ = 0;
  // Patterns of the running pass by literal prefix, so that a scanned key is matched only
  // against the patterns whose prefix it starts with.
  std::unordered_map<std::string, std::vector<std::string>> pass_by_prefix_;
  std::vector<std::size_t> pass_prefix_lengths_;
  // SCAN cursor per shard, by node address taken at the start of the pass (a cursor is only
  // meaningful to the node that issued it); "" once that shard's SCAN is complete.
  std::map<std::string, std::string> cursors_;
  std::size_t scans_outstanding_ = 0;
  std::size_t pass_unlinks_in_flight_ = 0;

  // The index lane, apart from the scan lane so that an index purge never waits for a
  // pass over the whole keyspace: pattern -> (prefix, waiters).
  std::unordered_map<std::string, std::pair<std::string, Waiters>> index_pending_;
  std::unordered_map<std::string, std::pair<std::string, Waiters>> index_pass_;
  bool index_running_ = false;

  std::vector<std::pair<std::string, JobRef>> pending_tags_;
  std::size_t tags_in_flight_ = 0;
};

}  // namespace pgcohere::invalidation
