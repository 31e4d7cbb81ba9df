// Secrets that auth_query looked up, kept for a bounded time (auth_query_cache_ttl) so that
// clients that connect for every request do not cost a query each (pgbouncer#1302), while
// a changed or dropped password takes effect within that time. Pure: time is passed in.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>

#include "auth/userlist.h"

namespace pgcohere::auth {

class SecretCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit SecretCache(std::size_t max_entries = 10000) : max_entries_(max_entries) {}

  // The entry stored under `key` unless it is older than `ttl_seconds`.
  std::optional<UserEntry> find(const std::string& key, Clock::time_point now, double ttl_seconds) const {
    auto it = entries_.find(key);
    if (it == entries_.end() || ttl_seconds <= 0) return std::nullopt;
    if (std::chrono::duration<double>(now - it->second.stored_at).count() >= ttl_seconds) return std::nullopt;
    return it->second.entry;
  }
  void put(const std::string& key, UserEntry entry, Clock::time_point now, double ttl_seconds) {
    if (ttl_seconds <= 0) return;
    if (entries_.size() >= max_entries_ && !entries_.count(key)) prune(now, ttl_seconds);
    entries_.insert_or_assign(key, Stored{std::move(entry), now});
  }
  void clear() { entries_.clear(); }
  std::size_t size() const { return entries_.size(); }

 private:
  struct Stored {
    UserEntry entry;
    Clock::time_point stored_at;
  };
  // Drops expired entries; if none had expired, all of them (the bound matters more than a
  // few extra lookups).
  void prune(Clock::time_point now, double ttl_seconds) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (std::chrono::duration<double>(now - it->second.stored_at).count() >= ttl_seconds) it = entries_.erase(it);
      else ++it;
    }
    if (entries_.size() >= max_entries_) entries_.clear();
  }

  std::size_t max_entries_;
  std::map<std::string, Stored> entries_;
};

}  // namespace pgcohere::auth
