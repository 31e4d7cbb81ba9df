// The Redis-side pattern index (see prefix_index.h).
#include "invalidation/prefix_index.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include <boost/asio/post.hpp>

#include "contract/glob.h"
#include "util/log.h"

namespace pgcohere::invalidation {

namespace {
// One set: every member unlinked, then the set, atomically (a member added meanwhile
// would otherwise be lost with the set). Returns {keys removed, members}.
constexpr const char* kPurgeAll = R"(local m = redis.call('SMEMBERS', KEYS[1])
local n = 0
for i = 1, #m, 1000 do
  n = n + redis.call('UNLINK', unpack(m, i, math.min(i + 999, #m)))
end
redis.call('UNLINK', KEYS[1])
return {n, #m})";

// The same on one primary of a cluster: the members may live in any slot of the node
// (scripts without flags may reach them), or have moved to another node with their slot
// (pcall: the error is skipped; the other node lists them).
constexpr const char* kPurgeAllCluster = R"(local m = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, k in ipairs(m) do
  local r = redis.pcall('UNLINK', k)
  if type(r) == 'number' then n = n + r end
end
redis.call('UNLINK', KEYS[1])
return {n, #m})";

// Unlinks the members ARGV (matched by the daemon) one by one and removes them from the
// set KEYS[1]. Returns the keys removed.
constexpr const char* kUnlinkListed = R"(local n = 0
for _, k in ipairs(ARGV) do
  local r = redis.pcall('UNLINK', k)
  if type(r) == 'number' then n = n + r end
  redis.call('SREM', KEYS[1], k)
end
return n)";

// Drops the members whose key is gone (expired, evicted, deleted by the application,
// moved to another cluster node: EXISTS fails there), and
// the set from the registry once it is empty. Atomic per set: a key re-created afterwards
// is added again by its notification. Returns {entries removed, entries left}.
constexpr const char* kTrim = R"(local m = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, k in ipairs(m) do
  if redis.pcall('EXISTS', k) ~= 1 then
    redis.call('SREM', KEYS[1], k)
    n = n + 1
  end
end
local left = redis.call('SCARD', KEYS[1])
if left == 0 then redis.call('SREM', KEYS[2], KEYS[1]) end
return {n, left})";

// notify-keyspace-events with the flags the index needs added to those already set:
// E (keyevent channels), n (new keys; not part of A), e (evictions; part of A).
std::string merged_flags(std::string flags) {
  if (flags.find('E') == std::string::npos) flags.push_back('E');
  if (flags.find('n') == std::string::npos) flags.push_back('n');
  if (flags.find('e') == std::string::npos && flags.find('A') == std::string::npos) flags.push_back('e');
  return flags;
}
}  // namespace

struct PurgeGather {
  std::size_t outstanding = 0;
  PrefixIndex::Result result{true, 0, 0};
  std::function<void(PrefixIndex::Result)> done;
  void finish_one() {
    if (--outstanding == 0) done(result);
  }
};

PrefixIndex::PrefixIndex(boost::asio::io_context& io, const std::string& host, int port, int db,
                         PrefixIndexOptions options, std::string cluster_tag)
    : io_(io),
      options_(options),
      tag_(std::move(cluster_tag)),
      new_channel_("__keyevent@" + std::to_string(db) + "__:new"),
      evicted_channel_("__keyevent@" + std::to_string(db) + "__:evicted"),
      barrier_channel_(std::string(kNamespace) + tag_ + "barrier:" + std::to_string(getpid()) + ":" +
                       std::to_string(reinterpret_cast<std::uintptr_t>(this))),
      probe_key_(std::string(kNamespace) + tag_ + "probe:" + std::to_string(getpid())),
      sub_(std::make_shared<redis::AsyncClient>(io, host, port, 0, "redis-index-sub")),
      cmd_(std::make_shared<redis::AsyncClient>(io, host, port, db, "redis-index")),
      trim_(std::make_shared<redis::AsyncClient>(io, host, port, db, "redis-index-trim")),
      trim_timer_(io),
      retry_timer_(io) {
  cmd_->set_timeouts(options.command_timeout, options.command_timeout);
  trim_->set_timeouts(options.command_timeout, options.command_timeout);
  sub_->set_timeouts(options.command_timeout, std::chrono::milliseconds(0));
}

void PrefixIndex::start() {
  if (weak_from_this().expired())
    throw std::logic_error("PrefixIndex must be owned by a std::shared_ptr (std::make_shared)");
  // The clients' state handlers are called (posted) while the index may be gone.
  auto weak = weak_from_this();
  sub_->on_state([weak](bool up) {
    if (auto self = weak.lock()) self->on_link(up);
  });
  cmd_->on_state([weak](bool up) {
    if (auto self = weak.lock()) self->on_link(up);
  });
  sub_->start();
  cmd_->start();
  trim_->start();
  schedule_trim();
}

void PrefixIndex::stop() {
  broken("stopping");
  trim_timer_.cancel();
  retry_timer_.cancel();
  sub_->stop();
  cmd_->stop();
  trim_->stop();
}

void PrefixIndex::set_families(const std::string& source, const std::vector<std::string>& templates) {
  templates_by_source_[source] = templates;
  std::vector<std::string> all;
  for (const auto& [src, list] : templates_by_source_) all.insert(all.end(), list.begin(), list.end());
  std::size_t before = families_.size();
  bool added = families_.assign(all);
  if (families_.size() != before || added) {
    PGC_LOG_INFO << "pattern index: " << families_.size() << " key famil" << (families_.size() == 1 ? "y" : "ies");
  }
  // Keys of a new family written before now are in no set yet.
  if (added) rebuild("new key family");
}

std::optional<std::string> PrefixIndex::prefix_for(std::string_view pattern) const {
  if (!ready()) return std::nullopt;
  return families_.prefix_for(pattern);
}

void PrefixIndex::on_link(bool up) {
  if (!up) {
    broken("connection to Redis lost");
    return;
  }
  if (state_ == State::down && sub_->connected() && cmd_->connected()) begin();
}

void PrefixIndex::begin() {
  state_ = State::subscribing;
  confirmations_ = 0;
  // The barrier travels as a shard message where Redis has them (7.0+): in a cluster a
  // PUBLISH is broadcast to every node over the cluster bus, an SPUBLISH stays with the
  // shard that owns its channel's slot (the node's tag slot). Redis writes it to this
  // connection behind the keyspace notifications sent before it (both are appended to
  // the subscriber's output in the order they are published, pubsubPublishMessage).
  // SSUBSCRIBE goes first: hiredis 0.14 matches replies to callbacks in order until the
  // connection is subscribed, and knows no "smessage", which it hands to the callback of
  // the plain channel of that name, hence the same channel in both subscriptions.
  // Without SSUBSCRIBE (an error: Redis < 7), barriers are PUBLISHed.
  if (!sharded_refused_) {
    sub_->subscribe({"SSUBSCRIBE", barrier_channel_}, [this](redis::Reply m) { on_message(m); });
  } else {
    sharded_ = false;
    ++confirmations_;
  }
  sub_->subscribe({"SUBSCRIBE", new_channel_, evicted_channel_, barrier_channel_},
                 [this](redis::Reply m) { on_message(m); });
  watch_subscription([this] { return state_ == State::subscribing; });
}

// The subscription connection only receives, so a peer gone silently (no FIN, no RST: a
// crashed host, a dropped NAT entry) leaves it "connected" forever while Redis, which
// still counts the subscriber, answers PUBLISH; barriers would then never come back and
// keys written meanwhile would be in no index set. So whatever is asked of it (the
// confirmations, the probe, a barrier) must come back within two command timeouts (a
// PUBLISH and its delivery), or the connection is dropped and pattern purges scan until
// the index is rebuilt.
void PrefixIndex::watch_subscription(std::function<bool()> still_waiting) {
  if (options_.command_timeout.count() <= 0) return;
  auto timer = std::make_shared<boost::asio::steady_timer>(io_);
  timer->expires_after(2 * options_.command_timeout);
  std::uint64_t gen = generation_;
  timer->async_wait([this, timer, gen, still_waiting = std::move(still_waiting),
                     weak = weak_from_this()](boost::system::error_code ec) {
    if (ec || weak.expired() || gen != generation_ || !still_waiting()) return;
    broken("the subscription connection answered nothing for " +
           std::to_string(2 * options_.command_timeout.count()) + " ms");
    sub_->reconnect("subscription silent");
  });
}

void PrefixIndex::probe() {
  state_ = State::probing;
  probe_seen_ = false;
  std::uint64_t gen = generation_;
  cmd_->command({"CONFIG", "GET", "notify-keyspace-events"}, [this, gen](redis::Reply r) {
    if (gen != generation_) return;
    auto verify = [this, gen] {
      if (gen != generation_) return;
      // A key created now must come back as a "new" notification before the barrier.
      cmd_->command({"DEL", probe_key_}, [](redis::Reply) {});
      cmd_->command({"SET", probe_key_, "1", "PX", "10000"}, [](redis::Reply) {});
      cmd_->command({sharded_ ? "SPUBLISH" : "PUBLISH", barrier_channel_, "probe"}, [](redis::Reply) {});
      watch_subscription([this] { return state_ == State::probing; });
    };
    if (r.is_error() || r.elements.size() != 2) {
      PGC_LOG_WARN << "pattern index: CONFIG GET notify-keyspace-events failed (" << r.str
                   << "); checking whether notifications are on anyway";
      verify();
      return;
    }
    std::string current = r.elements[1].str;
    std::string wanted = merged_flags(current);
    if (wanted == current) {
      verify();
      return;
    }
    cmd_->command({"CONFIG", "SET", "notify-keyspace-events", wanted}, [this, gen, current, wanted, verify](redis::Reply s) {
      if (gen != generation_) return;
      if (s.is_error()) {
        PGC_LOG_WARN << "pattern index: CONFIG SET notify-keyspace-events " << wanted << " failed: " << s.str;
      } else {
        PGC_LOG_INFO << "pattern index: notify-keyspace-events \"" << current << "\" -> \"" << wanted << "\"";
      }
      verify();
    });
  });
}

void PrefixIndex::on_message(const redis::Reply& r) {
  if (r.is_error()) {
    // Only SSUBSCRIBE can be refused (unknown command, or a slot not served here).
    if (state_ != State::subscribing) return;
    PGC_LOG_INFO << "pattern index: SSUBSCRIBE refused (" << r.str << "); barriers use PUBLISH";
    sharded_refused_ = true;
    sharded_ = false;
    if (++confirmations_ == 4) probe();
    return;
  }
  if (r.type != redis::Reply::Type::array || r.elements.size() < 3) return;
  const std::string& kind = r.elements[0].str;
  if (kind == "subscribe" || kind == "ssubscribe") {
    if (kind == "ssubscribe") sharded_ = true;
    if (state_ == State::subscribing && ++confirmations_ == 4) probe();
    return;
  }
  if (kind == "sunsubscribe") {
    // The tag slot left this node: its shard channel went with it.
    broken("the barrier's shard channel was unsubscribed (slot moved)");
    resubscribe_later();
    return;
  }
  if (kind != "message" && kind != "smessage") return;
  const std::string& channel = r.elements[1].str;
  const std::string& payload = r.elements[2].str;
  if (channel == new_channel_) {
    if (payload == probe_key_)
      probe_seen_ = true;
    else
      on_new_key(payload);
    return;
  }
  if (channel == evicted_channel_) {
    if (is_index_key(payload)) rebuild("Redis evicted the index set " + payload);
    return;
  }
  if (channel != barrier_channel_) return;
  if (payload == "probe") {
    if (state_ != State::probing) return;
    if (!probe_seen_) {
      ++counters_.unavailable;
      state_ = State::unavailable;
      PGC_LOG_WARN << "pattern index: Redis sends no keyspace notifications of new keys (notify-keyspace-events "
                      "needs E, n and e, and CONFIG SET was refused); pattern purges SCAN the keyspace. Trying "
                      "again in "
                   << options_.probe_retry.count() / 1000 << " s";
      std::uint64_t gen = generation_;
      retry_timer_.expires_after(options_.probe_retry);
      retry_timer_.async_wait([this, gen, weak = weak_from_this()](boost::system::error_code ec) {
        if (!ec && !weak.expired() && gen == generation_ && state_ == State::unavailable) probe();
      });
      return;
    }
    state_ = State::building;  // notifications work; the families decide whether to scan
    rebuild("start");
    return;
  }
  // A barrier: every notification before it has been handled; their additions go out
  // now, ahead of whatever the waiter sends next on the same connection.
  std::uint64_t token = 0;
  try {
    token = std::stoull(payload);
  } catch (...) {
    return;
  }
  flush();
  while (!barriers_.empty() && barriers_.begin()->first <= token) {
    auto done = std::move(barriers_.begin()->second);
    barriers_.erase(barriers_.begin());
    done(state_ == State::ready);
  }
}

void PrefixIndex::on_new_key(const std::string& key) {
  if ((state_ != State::building && state_ != State::ready) || is_index_key(key)) return;
  for (const auto& prefix : families_.prefixes_of(key)) queue_add(set_name(prefix), key);
}

void PrefixIndex::rebuild(const std::string& why) {
  if (state_ != State::building && state_ != State::ready) return;  // the probe builds later
  ++generation_;
  state_ = State::building;
  trimming_ = false;
  if (families_.empty()) return;  // nothing to index yet: set_families() rebuilds
  ++counters_.builds;
  PGC_LOG_INFO << "pattern index: building from SCAN (" << why << "); pattern purges scan until it is done";
  build_step("0", generation_);
}

void PrefixIndex::build_step(const std::string& cursor, std::uint64_t gen) {
  cmd_->command({"SCAN", cursor, "COUNT", std::to_string(options_.scan_count)}, [this, gen](redis::Reply r) {
    if (gen != generation_ || state_ != State::building) return;
    if (r.is_error() || r.type != redis::Reply::Type::array || r.elements.size() != 2) {
      PGC_LOG_WARN << "pattern index: SCAN failed: " << r.str << "; starting over";
      retry_timer_.expires_after(std::chrono::seconds(1));
      retry_timer_.async_wait([this, gen, weak = weak_from_this()](boost::system::error_code ec) {
        if (!ec && !weak.expired() && gen == generation_) rebuild("SCAN failed");
      });
      return;
    }
    for (const auto& k : r.elements[1].elements) on_new_key(k.str);
    if (r.elements[0].str != "0") {
      build_step(r.elements[0].str, gen);
      return;
    }
    state_ = State::ready;
    PGC_LOG_INFO << "pattern index: ready (" << families_.size() << " key families)";
  });
}

void PrefixIndex::broken(const std::string& why) {
  if (state_ == State::building || state_ == State::ready) {
    PGC_LOG_WARN << "pattern index: " << why << "; pattern purges scan until it is rebuilt";
  }
  state_ = State::down;
  ++generation_;
  trimming_ = false;
  confirmations_ = 0;
  pending_adds_.clear();
  auto pending = std::move(barriers_);
  barriers_.clear();
  for (auto& [id, done] : pending) done(false);
}

void PrefixIndex::barrier(std::function<void(bool)> done) {
  if (state_ != State::ready) {
    boost::asio::post(io_, [done = std::move(done)] { done(false); });
    return;
  }
  std::uint64_t id = next_barrier_++;
  barriers_.emplace(id, std::move(done));
  watch_subscription([this, id] { return barriers_.count(id) > 0; });
  std::uint64_t gen = generation_;
  cmd_->command({sharded_ ? "SPUBLISH" : "PUBLISH", barrier_channel_, std::to_string(id)}, [this, gen](redis::Reply r) {
    if (gen != generation_ || (!r.is_error() && r.integer >= 1)) return;
    // Nobody heard it: the subscription is gone although the links may be up.
    broken("barrier not delivered");
    resubscribe_later();
  });
}

void PrefixIndex::resubscribe_later() {
  retry_timer_.expires_after(std::chrono::seconds(1));
  retry_timer_.async_wait([this, weak = weak_from_this()](boost::system::error_code ec) {
    if (!ec && !weak.expired() && state_ == State::down && sub_->connected() && cmd_->connected()) begin();
  });
}

void PrefixIndex::queue_add(const std::string& set, const std::string& key) {
  pending_adds_[set].push_back(key);
  schedule_flush();
}

void PrefixIndex::schedule_flush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(io_, [this, weak = weak_from_this()] {
    if (weak.expired()) return;
    flush_posted_ = false;
    flush();
  });
}

void PrefixIndex::flush() {
  if (pending_adds_.empty()) return;
  auto adds = std::move(pending_adds_);
  pending_adds_.clear();
  // The registry after the sets: the trim (on its own connection) drops a registry entry
  // whose set does not exist, so the entry must not arrive before its set.
  std::vector<std::string> registry{"SADD", registry_name()};
  for (const auto& [set, members] : adds) registry.push_back(set);
  std::uint64_t gen = generation_;
  for (auto& [set, members] : adds) {
    std::vector<std::string> argv{"SADD", set};
    argv.insert(argv.end(), std::make_move_iterator(members.begin()), std::make_move_iterator(members.end()));
    cmd_->command(std::move(argv), [this, gen, weak = weak_from_this()](redis::Reply r) {
      if (weak.expired()) return;
      if (!r.is_error()) {
        counters_.entries_added += static_cast<std::uint64_t>(r.integer);
        // Bounded growth: once as many entries were added as the last trim left, the sets
        // may hold as many entries of vanished keys as of live ones: trim now.
        added_since_trim_ += static_cast<std::uint64_t>(r.integer);
        if (options_.trim_interval.count() > 0 && state_ == State::ready &&
            added_since_trim_ > std::max<std::uint64_t>(entries_after_trim_, options_.trim_min_entries))
          trim_now();
        return;
      }
      // A lost connection is a gap handled by on_link(); anything else loses an entry.
      if (gen == generation_ && cmd_->connected()) rebuild("SADD failed: " + r.str);
    });
  }
  cmd_->command(std::move(registry), [](redis::Reply) {});
}

void PrefixIndex::purge(std::vector<Work> work, std::function<void(Result)> done) {
  barrier([this, work = std::move(work), done = std::move(done), weak = weak_from_this()](bool ok) mutable {
    if (weak.expired()) return;
    if (!ok || work.empty()) {
      done(Result{ok, 0, 0});
      return;
    }
    auto g = std::make_shared<PurgeGather>();
    g->outstanding = work.size();
    g->done = std::move(done);
    for (const auto& w : work) purge_one(w, g);
  });
}

void PrefixIndex::purge_one(const Work& w, const std::shared_ptr<PurgeGather>& g) {
  std::string set = set_name(w.prefix);
  // Then the slot check, if any (PatternIndex::Work::slot_check), on the same connection.
  auto finish = [this, g, check = w.slot_check] {
    if (check.empty()) {
      g->finish_one();
      return;
    }
    cmd_->command({"EXISTS", check}, [g](redis::Reply r) {
      if (r.is_error()) g->result.ok = false;
      g->finish_one();
    });
  };
  if (w.pattern == contract::glob_escape(w.prefix) + "*") {
    cmd_->command({"EVAL", tag_.empty() ? kPurgeAll : kPurgeAllCluster, "1", set}, [g, finish](redis::Reply r) {
      if (r.is_error() || r.elements.size() != 2) {
        g->result.ok = false;
      } else {
        g->result.removed += static_cast<std::uint64_t>(r.elements[0].integer);
        g->result.visited += static_cast<std::uint64_t>(r.elements[1].integer);
      }
      finish();
    });
    return;
  }
  // A pattern narrower than its prefix: the matching members only, the rest stay listed.
  cmd_->command({"SMEMBERS", set}, [this, g, set, pattern = w.pattern, finish](redis::Reply r) {
    if (r.is_error()) {
      g->result.ok = false;
      g->finish_one();
      return;
    }
    g->result.visited += r.elements.size();
    std::vector<std::string> argv{"EVAL", kUnlinkListed, "1", set};
    for (auto& m : r.elements)
      if (contract::glob_match(pattern, m.str)) argv.push_back(std::move(m.str));
    if (argv.size() == 4) {
      finish();
      return;
    }
    cmd_->command(std::move(argv), [g, finish](redis::Reply u) {
      if (u.is_error())
        g->result.ok = false;
      else
        g->result.removed += static_cast<std::uint64_t>(u.integer);
      finish();
    });
  });
}

void PrefixIndex::schedule_trim() {
  if (options_.trim_interval.count() <= 0) return;
  trim_timer_.expires_after(options_.trim_interval);
  trim_timer_.async_wait([this, weak = weak_from_this()](boost::system::error_code ec) {
    if (ec || weak.expired()) return;
    trim_now();
    schedule_trim();
  });
}

void PrefixIndex::trim_now() {
  if (trimming_ || !ready()) return;
  trimming_ = true;
  added_since_trim_ = 0;
  trim_entries_ = 0;
  trim_step("0", generation_);
}

void PrefixIndex::trim_step(const std::string& cursor, std::uint64_t gen) {
  // On a connection of its own, one set at a time: purges never queue behind a batch of
  // trim scripts, and Redis runs them between the scripts.
  trim_->command({"SSCAN", registry_name(), cursor, "COUNT", "100"}, [this, gen](redis::Reply r) {
    if (gen != generation_) return;
    if (r.is_error() || r.type != redis::Reply::Type::array || r.elements.size() != 2) {
      trimming_ = false;
      return;
    }
    auto names = std::make_shared<std::vector<std::string>>();
    for (auto& name : r.elements[1].elements) names->push_back(std::move(name.str));
    trim_sets(names, 0, r.elements[0].str, gen);
  });
}

void PrefixIndex::trim_sets(std::shared_ptr<std::vector<std::string>> names, std::size_t i, std::string cursor,
                            std::uint64_t gen) {
  if (i == names->size()) {
    if (cursor != "0") {
      trim_step(cursor, gen);
    } else {
      trimming_ = false;
      ++counters_.trims;
      entries_after_trim_ = trim_entries_;
    }
    return;
  }
  trim_->command({"EVAL", kTrim, "2", (*names)[i], registry_name()},
                 [this, names, i, cursor = std::move(cursor), gen](redis::Reply t) mutable {
                   if (gen != generation_) return;
                   if (t.is_error()) {
                     trimming_ = false;
                     return;
                   }
                   if (t.elements.size() == 2) {
                     counters_.entries_trimmed += static_cast<std::uint64_t>(t.elements[0].integer);
                     trim_entries_ += static_cast<std::uint64_t>(t.elements[1].integer);
                   }
                   trim_sets(std::move(names), i + 1, std::move(cursor), gen);
                 });
}

}  // namespace pgcohere::invalidation
