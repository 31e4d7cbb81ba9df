// The pattern index, kept in Redis beside the data: one set per rendered key prefix
// ("pgcohere-idx:s:msg:history:42:" lists the keys under "msg:history:42:"), filled from
// keyspace notifications of new keys for the key families that rules and declarations
// name (KeyFamilies), so that a pattern purge costs O(matching keys) and the daemon holds
// no key names. A purge first sends a barrier (SPUBLISH to its own shard channel, or
// PUBLISH where Redis < 7 has none: Redis delivers it after every notification generated
// before it, whose set additions are then sent ahead of the purge on the same
// connection), then unlinks the set's members and the set in one script. Notifications are switched on by the daemon (CONFIG SET, flags merged)
// and verified with a probe key; every gap (start, reconnect, a new family, an evicted
// set) is covered by one SCAN pass, and until it ends the purger scans. A periodic trim
// drops entries of keys that expired or were evicted.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "invalidation/key_families.h"
#include "invalidation/pattern_index.h"
#include "redis/async_client.h"

namespace pgcohere::invalidation {

struct PrefixIndexOptions {
  std::chrono::milliseconds command_timeout{1000};
  // A trim pass reads every entry (about 2 us of Redis time each): every 5 minutes, and
  // sooner once more entries were added than the last pass left (at least trim_min_entries).
  std::chrono::milliseconds trim_interval{300000};  // 0: no trim
  std::uint64_t trim_min_entries = 100000;
  std::chrono::milliseconds probe_retry{30000};    // notifications unavailable: try again after
  std::size_t scan_count = 1000;
};

// Owned by a std::shared_ptr (docs/architecture.md, "Threads and lifetimes"): replies and
// timers hold a weak_ptr and do nothing once the index is gone.
class PrefixIndex : public PatternIndex, public std::enable_shared_from_this<PrefixIndex> {
 public:
  static constexpr std::string_view kNamespace = "pgcohere-idx:";
  // Keys of the index itself (sets, their registry, the probe): never indexed, never
  // matched by a scanned pattern purge.
  static bool is_index_key(std::string_view key) { return key.substr(0, kNamespace.size()) == kNamespace; }
  // "pgcohere-idx:<tag>s:<prefix>"; the tag is "" on a single server, a "{hash tag}" of a
  // slot of the node in a cluster, so that every key of the index lives on its node.
  std::string set_name(std::string_view prefix) const { return std::string(kNamespace) + tag_ + "s:" + std::string(prefix); }
  std::string registry_name() const { return std::string(kNamespace) + tag_ + "registry"; }

  // `cluster_tag` non-empty: one primary of a Redis Cluster. The index's own keys carry the
  // tag, and the scripts unlink the listed keys one by one, skipping those that moved to
  // another node (their new node lists them: a restored key is a new key there).
  PrefixIndex(boost::asio::io_context& io, const std::string& host, int port, int db, PrefixIndexOptions options = {},
              std::string cluster_tag = "");
  PrefixIndex(const PrefixIndex&) = delete;
  PrefixIndex& operator=(const PrefixIndex&) = delete;

  // Throws std::logic_error if the index is not owned by a std::shared_ptr.
  void start() override;
  void stop() override;
  void set_families(const std::string& source, const std::vector<std::string>& templates) override;
  bool ready() const override { return state_ == State::ready && !families_.empty(); }
  std::optional<std::string> prefix_for(std::string_view pattern) const override;
  void purge(std::vector<Work> work, std::function<void(Result)> done) override;
  PrefixIndexCounters counters() const override { return counters_; }
  std::size_t families() const override { return families_.size(); }

  // Runs a trim pass now (tests; the timer runs it every trim_interval).
  void trim_now();
  bool notifications_ok() const { return state_ == State::building || state_ == State::ready; }

 private:
  enum class State { down, subscribing, probing, unavailable, building, ready };
  void on_link(bool up);
  void begin();
  void probe();
  void on_message(const redis::Reply& r);
  void on_new_key(const std::string& key);
  void rebuild(const std::string& why);
  void build_step(const std::string& cursor, std::uint64_t gen);
  void broken(const std::string& why);
  void barrier(std::function<void(bool)> done);
  void resubscribe_later();  // subscribe again in 1 s if still down with both links up
  void watch_subscription(std::function<bool()> still_waiting);
  void queue_add(const std::string& prefix, const std::string& key);
  void schedule_flush();
  void flush();
  void purge_one(const Work& w, const std::shared_ptr<struct PurgeGather>& g);
  void schedule_trim();
  void trim_step(const std::string& cursor, std::uint64_t gen);
  void trim_sets(std::shared_ptr<std::vector<std::string>> names, std::size_t i, std::string cursor,
                 std::uint64_t gen);

  boost::asio::io_context& io_;
  PrefixIndexOptions options_;
  std::string tag_;
  std::string new_channel_;      // __keyevent@<db>__:new
  std::string evicted_channel_;  // __keyevent@<db>__:evicted
  std::string barrier_channel_;
  std::string probe_key_;
  // Only the index owns its clients: their command callbacks (which capture `this`) never
  // run once the index, and with it the clients, are gone.
  std::shared_ptr<redis::AsyncClient> sub_;
  std::shared_ptr<redis::AsyncClient> cmd_;
  std::shared_ptr<redis::AsyncClient> trim_;
  State state_ = State::down;
  std::uint64_t generation_ = 0;  // bumps on every gap: replies of an older one are ignored
  int confirmations_ = 0;  // of SUBSCRIBE's 3 channels and of SSUBSCRIBE (or its refusal)
  bool sharded_ = false;          // barriers are SPUBLISHed (SSUBSCRIBE confirmed)
  bool sharded_refused_ = false;  // SSUBSCRIBE was refused once: PUBLISH from then on
  bool probe_seen_ = false;

  std::map<std::string, std::vector<std::string>> templates_by_source_;
  KeyFamilies families_;

  std::unordered_map<std::string, std::vector<std::string>> pending_adds_;  // set -> members
  bool flush_posted_ = false;

  std::uint64_t next_barrier_ = 1;
  std::map<std::uint64_t, std::function<void(bool)>> barriers_;

  bool trimming_ = false;
  std::uint64_t added_since_trim_ = 0;   // entries added since the last pass began
  std::uint64_t entries_after_trim_ = 0; // entries the last complete pass left
  std::uint64_t trim_entries_ = 0;       // entries the running pass has left so far
  boost::asio::steady_timer trim_timer_;
  boost::asio::steady_timer retry_timer_;
  PrefixIndexCounters counters_;
};

}  // namespace pgcohere::invalidation
