// Server parameters that follow a client from one server connection to the next
// (PgBouncer's varcache): the client's values, each server's values, and the SET
// statements that make a server match a client before it runs the client's query.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcohere::session {

// Names as the server reports them in ParameterStatus (client_encoding, DateStyle,
// TimeZone, IntervalStyle, standard_conforming_strings, application_name) plus any
// track_extra_parameters. Lookups ignore case, as startup packets may not match.
class TrackedNames {
 public:
  explicit TrackedNames(const std::vector<std::string>& extra = {});
  // The canonical spelling of a tracked name, or "" when the name is not tracked.
  std::string_view canonical(std::string_view name) const;
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
};

// A small ordered name -> value map (a handful of entries; linear search is fastest). Every
// client holds one, and most clients of a pool hold the same values: the entries live in
// storage shared between copies, copied on the first set() that changes a value, and
// share_if_equal() lets a login adopt an equal map another client already holds (10,000
// idle clients then keep one copy, not 10,000). Names are interned (a few dozen, the
// server's and the tracked ones). Not thread-safe: one pooler thread owns its maps.
class ParamMap {
 public:
  using Entries = std::vector<std::pair<std::string_view, std::string>>;  // names: intern_name()

  const std::string* get(std::string_view name) const;
  // Returns true when the value changed.
  bool set(std::string_view name, std::string_view value);
  void reserve(std::size_t n) { own().entries.reserve(n); }
  const Entries& entries() const;
  // Changes with every set() that changes a value (never 0).
  uint64_t version() const { return version_; }
  // A hash of the contents: equal maps have equal fingerprints, whatever their history.
  uint64_t fingerprint() const { return data_ ? data_->fingerprint : 0; }
  // Makes this map and `other` share one storage when they hold the same entries in the
  // same order; true when they do (then or already).
  bool share_if_equal(const ParamMap& other);
  // Whether this map's entries are held by another map too (for tests).
  bool shares_storage_with(const ParamMap& other) const { return data_ && data_ == other.data_; }

 private:
  struct Data {
    Entries entries;
    uint64_t fingerprint = 0;
  };
  static uint64_t entry_hash(std::string_view name, std::string_view value);
  Data& own();  // storage this map alone holds, copied first if shared
  std::shared_ptr<Data> data_;  // null: no entries
  uint64_t version_ = 1;
};

// The process's one copy of a parameter name, valid until exit. Names come from servers'
// ParameterStatus messages and from the tracked list, never from clients, so the set stays small.
std::string_view intern_name(std::string_view name);

// SQL that makes `server` agree with `client` on every tracked parameter the client has;
// "" when they already agree. One Query message, so one ReadyForQuery to absorb.
std::string sync_sql(const TrackedNames& tracked, const ParamMap& client, const ParamMap& server);

}  // namespace pgcohere::session
