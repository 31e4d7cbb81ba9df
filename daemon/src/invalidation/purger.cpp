// Purger: UNLINK batches for exact keys; patterns through the prefix index, or one shared
// SCAN pass for all pending patterns it cannot answer.
#include "invalidation/purger.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "cache/redis_layout.h"
#include "contract/glob.h"
#include "invalidation/prefix_index.h"
#include "util/log.h"

namespace pgcohere::invalidation {

namespace {
// Unescapes a literal glob (every metacharacter escaped) into the one key it matches.
std::string unescape_glob(std::string_view pattern) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) ++i;
    out.push_back(pattern[i]);
  }
  return out;
}

std::string common_prefix(const std::vector<std::string>& prefixes) {
  if (prefixes.empty()) return {};
  std::string p = prefixes.front();
  for (const auto& s : prefixes) {
    std::size_t n = 0;
    while (n < p.size() && n < s.size() && p[n] == s[n]) ++n;
    p.resize(n);
  }
  return p;
}
}  // namespace

Purger::Purger(boost::asio::io_context& io, redis::Backend& backend, PurgeOptions options, PatternIndex* index)
    : retry_timer_(io), backend_(backend), index_(index), options_(std::move(options)) {}

bool Purger::idle() const {
  return key_queue_.empty() && batches_in_flight_ == 0 && pending_patterns_.empty() && !pass_running_ &&
         index_pending_.empty() && !index_running_ && pending_tags_.empty() && tags_in_flight_ == 0;
}

void Purger::release(const Waiters& waiters) {
  for (const auto& job : waiters)
    if (--job->outstanding == 0 && job->done) job->done();
}

void Purger::queue_key(const std::string& key, const JobRef& job) {
  auto [it, inserted] = queued_.try_emplace(key);
  it->second.push_back(job);
  if (inserted)
    key_queue_.push_back(key);
  else
    ++counters_.keys_coalesced;
}

void Purger::submit(PurgeJob work, Done done) {
  if (weak_from_this().expired()) throw std::logic_error("Purger must be owned by a std::shared_ptr (std::make_shared)");
  auto job = std::make_shared<Job>();
  job->done = std::move(done);
  job->outstanding = 1;  // held by this function until everything is queued
  for (const auto& key : work.keys) {
    if (key.empty()) continue;
    ++job->outstanding;
    queue_key(key, job);
  }
  for (const auto& pattern : work.patterns) {
    if (pattern.empty()) continue;
    ++job->outstanding;
    if (contract::is_literal(pattern)) {
      queue_key(unescape_glob(pattern), job);
      continue;
    }
    if (auto prefix = index_ ? index_->prefix_for(pattern) : std::nullopt) {
      auto& slot = index_pending_[pattern];
      slot.first = std::move(*prefix);
      slot.second.push_back(job);
      continue;
    }
    pending_patterns_[pattern].push_back(job);
  }
  for (const auto& tag : work.tags) {
    if (tag.empty()) continue;
    ++job->outstanding;
    pending_tags_.emplace_back(tag, job);
  }
  release({job});
  if (held_ == 0) resume();
}

void Purger::release_hold() {
  if (held_ > 0 && --held_ == 0) resume();
}

void Purger::resume() {
  // What the pumps send goes out in one write per connection when this ends.
  struct Corked {
    redis::Backend& backend;
    explicit Corked(redis::Backend& b) : backend(b) { backend.cork(); }
    ~Corked() { backend.uncork(); }
  } corked(backend_);
  pump_keys();
  pump_tags();
  pump_index();
  pump_patterns();
}

void Purger::drop_all() {
  key_queue_.clear();
  queued_.clear();
  pending_patterns_.clear();
  index_pending_.clear();
  pending_tags_.clear();
}

void Purger::retry_later() {
  retry_timer_.expires_after(std::chrono::milliseconds(100));
  retry_timer_.async_wait([this, weak = weak_from_this()](boost::system::error_code ec) {
    if (auto self = weak.lock(); self && !ec) resume();
  });
}

void Purger::pump_keys() {
  while (backend_.ready() && batches_in_flight_ < options_.max_in_flight && !key_queue_.empty()) {
    std::vector<std::string> argv;
    auto waiters = std::make_shared<std::vector<std::pair<std::string, Waiters>>>();
    while (!key_queue_.empty() && argv.size() < options_.batch_keys) {
      std::string key = std::move(key_queue_.front());
      key_queue_.pop_front();
      auto node = queued_.extract(key);
      argv.push_back(key);
      waiters->emplace_back(std::move(key), std::move(node.mapped()));
    }
    ++batches_in_flight_;
    backend_.unlink(std::move(argv), false, [this, waiters, weak = weak_from_this()](redis::Reply r) {
      auto self = weak.lock();
      if (!self) return;
      --batches_in_flight_;
      if (r.is_error()) {
        ++counters_.redis_errors;
        PGC_LOG_DEBUG << "UNLINK failed, requeued: " << r.str;
        for (auto& [key, ws] : *waiters)
          for (auto& job : ws) queue_key(key, job);
        retry_later();
        return;
      }
      counters_.keys_sent += waiters->size();
      counters_.keys_removed += static_cast<std::uint64_t>(r.integer);
      for (auto& [key, ws] : *waiters) release(ws);
      pump_keys();
    });
  }
}

void Purger::pump_tags() {
  while (backend_.ready() && !pending_tags_.empty()) {
    auto [scoped, job] = std::move(pending_tags_.back());
    pending_tags_.pop_back();
    auto [database, tag] = cache::split_scoped_tag(scoped);
    ++tags_in_flight_;
    cache::invalidate_tag(backend_, cache::Layout(options_.cache_namespace, database), tag,
                          [this, scoped = scoped, job = job, weak = weak_from_this()](redis::Reply r) {
                            auto self = weak.lock();
                            if (!self) return;
                            --tags_in_flight_;
                            if (r.is_error()) {
                              ++counters_.redis_errors;
                              PGC_LOG_DEBUG << "cache tag invalidation failed, requeued: " << r.str;
                              pending_tags_.emplace_back(scoped, job);
                              retry_later();
                              return;
                            }
                            ++counters_.tags_invalidated;
                            counters_.tagged_entries_removed += static_cast<std::uint64_t>(r.integer);
                            release({job});
                          });
  }
}

void Purger::pump_patterns() {
  if (pass_running_ || pending_patterns_.empty() || !backend_.ready()) return;
  pass_patterns_ = std::move(pending_patterns_);
  pending_patterns_.clear();
  std::vector<std::string> prefixes;
  for (const auto& [pattern, ws] : pass_patterns_) prefixes.push_back(contract::literal_prefix(pattern));
  pass_match_ = pass_patterns_.size() == 1 ? pass_patterns_.begin()->first
                                           : contract::glob_escape(common_prefix(prefixes)) + "*";
  pass_by_prefix_.clear();
  pass_prefix_lengths_.clear();
  for (const auto& [pattern, ws] : pass_patterns_) {
    std::string prefix = contract::literal_prefix(pattern);
    if (std::find(pass_prefix_lengths_.begin(), pass_prefix_lengths_.end(), prefix.size()) ==
        pass_prefix_lengths_.end())
      pass_prefix_lengths_.push_back(prefix.size());
    pass_by_prefix_[prefix].push_back(pattern);
  }
  pass_running_ = true;
  pass_failed_ = false;
  pass_topology_ = backend_.topology_version();
  ++counters_.scan_passes;
  // Every primary holds part of the keyspace: scan them all, side by side.
  auto shards = backend_.shards();
  cursors_.clear();
  for (const auto& shard : shards) cursors_[shard] = "0";
  for (const auto& shard : shards) scan_step(shard);
  maybe_finish_pass();
}

void Purger::pump_index() {
  if (index_running_ || index_pending_.empty()) return;
  if (!index_->ready()) {
    // The index has a gap (reconnect, rebuild): these patterns are scanned.
    for (auto& [pattern, entry] : index_pending_) {
      auto& dst = pending_patterns_[pattern];
      dst.insert(dst.end(), entry.second.begin(), entry.second.end());
    }
    index_pending_.clear();
    return;
  }
  index_pass_ = std::move(index_pending_);
  index_pending_.clear();
  index_running_ = true;
  ++counters_.index_passes;
  std::vector<PatternIndex::Work> work;
  work.reserve(index_pass_.size());
  for (const auto& [pattern, entry] : index_pass_) work.push_back({pattern, entry.first, {}});
  index_->purge(std::move(work), [this, weak = weak_from_this()](PatternIndex::Result r) {
    auto self = weak.lock();
    if (!self) return;
    auto pass = std::move(index_pass_);
    index_pass_.clear();
    index_running_ = false;
    if (!r.ok) {
      // The index broke meanwhile: scan these patterns instead.
      for (auto& [pattern, entry] : pass) {
        auto& dst = pending_patterns_[pattern];
        dst.insert(dst.end(), entry.second.begin(), entry.second.end());
      }
      pump_patterns();
      pump_index();
      return;
    }
    counters_.index_keys_visited += r.visited;
    counters_.pattern_keys_removed += r.removed;
    counters_.patterns_purged += pass.size();
    counters_.index_patterns += pass.size();
    for (auto& [pattern, entry] : pass) release(entry.second);
    pump_index();
  });
}

void Purger::maybe_finish_pass() {
  if (!pass_running_ || scans_outstanding_ > 0 || pass_unlinks_in_flight_ > 0) return;
  // Keys moved between nodes during the pass (even after the last SCAN step): start over.
  if (!cursors_.empty() && backend_.topology_version() != pass_topology_) pass_failed_ = true;
  if (!pass_failed_)
    for (const auto& [shard, cursor] : cursors_)
      if (!cursor.empty()) return;  // that shard still has a SCAN step to take
  finish_pass();
}

void Purger::scan_step(const std::string& shard) {
  ++scans_outstanding_;
  std::vector<std::string> argv{"SCAN", cursors_[shard], "MATCH", pass_match_, "COUNT",
                                std::to_string(options_.scan_count)};
  backend_.scan(shard, std::move(argv), [this, shard, weak = weak_from_this()](redis::Reply r) {
    auto self = weak.lock();
    if (!self) return;
    --scans_outstanding_;
    if (backend_.topology_version() != pass_topology_) pass_failed_ = true;  // keys moved: start over
    if (r.is_error() || r.type != redis::Reply::Type::array || r.elements.size() != 2) {
      PGC_LOG_DEBUG << "SCAN failed: " << r.str;
      pass_failed_ = true;
    }
    if (pass_failed_) {
      maybe_finish_pass();
      return;
    }
    std::string cursor = r.elements[0].str;
    cursors_[shard] = cursor == "0" ? "" : cursor;
    std::vector<std::string> keys;
    bool single = pass_patterns_.size() == 1;  // the server already matched it
    for (auto& key : r.elements[1].elements) {
      if (PrefixIndex::is_index_key(key.str)) continue;  // the index's own sets stay
      bool hit = single;
      for (std::size_t len : pass_prefix_lengths_) {
        if (hit || len > key.str.size()) continue;
        auto it = pass_by_prefix_.find(key.str.substr(0, len));
        if (it == pass_by_prefix_.end()) continue;
        for (const auto& pattern : it->second)
          if ((hit = contract::glob_match(pattern, key.str))) break;
      }
      if (hit) keys.push_back(std::move(key.str));
    }
    if (!keys.empty()) {
      ++pass_unlinks_in_flight_;
      backend_.unlink(std::move(keys), true, [this, weak = weak_from_this()](redis::Reply u) {
        auto self = weak.lock();
        if (!self) return;
        --pass_unlinks_in_flight_;
        if (u.is_error())
          pass_failed_ = true;
        else
          counters_.pattern_keys_removed += static_cast<std::uint64_t>(u.integer);
        maybe_finish_pass();
      });
    }
    if (!cursors_[shard].empty()) scan_step(shard);
    maybe_finish_pass();
  });
}

void Purger::finish_pass() {
  auto patterns = std::move(pass_patterns_);
  pass_patterns_.clear();
  pass_running_ = false;
  if (pass_failed_) {
    ++counters_.redis_errors;
    for (auto& [pattern, ws] : patterns) {
      auto& dst = pending_patterns_[pattern];
      dst.insert(dst.end(), ws.begin(), ws.end());
    }
    retry_later();
    return;
  }
  counters_.patterns_purged += patterns.size();
  for (auto& [pattern, ws] : patterns) release(ws);
  pump_patterns();
}

}  // namespace pgcohere::invalidation
