// Server parameters that follow a client from one server connection to the next
// (PgBouncer's varcache): the client's values, each server's values, and the SET
// statements that make a server match a client before it runs the client's query.
#pragma once

#include <cstdint>
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
// client holds one: names are interned (a few dozen, the server's and the tracked ones), and
// reserve() lets a login size it exactly.
class ParamMap {
 public:
  const std::string* get(std::string_view name) const;
  // Returns true when the value changed.
  bool set(std::string_view name, std::string_view value);
  void reserve(std::size_t n) { entries_.reserve(n); }
  const std::vector<std::pair<std::string_view, std::string>>& entries() const { return entries_; }
  // Changes with every set() that changes a value (never 0).
  uint64_t version() const { return version_; }
  // A hash of the contents: equal maps have equal fingerprints, whatever their history.
  uint64_t fingerprint() const { return fingerprint_; }

 private:
  static uint64_t entry_hash(std::string_view name, std::string_view value);
  std::vector<std::pair<std::string_view, std::string>> entries_;  // names: intern_name()
  uint64_t version_ = 1;
  uint64_t fingerprint_ = 0;
};

// The process's one copy of a parameter name, valid until exit. Names come from servers'
// ParameterStatus messages and from the tracked list, never from clients, so the set stays small.
std::string_view intern_name(std::string_view name);

// SQL that makes `server` agree with `client` on every tracked parameter the client has;
// "" when they already agree. One Query message, so one ReadyForQuery to absorb.
std::string sync_sql(const TrackedNames& tracked, const ParamMap& client, const ParamMap& server);

}  // namespace pgcohere::session
