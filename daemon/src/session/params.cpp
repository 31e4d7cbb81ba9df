// Tracked server parameters (see params.h).
#include "session/params.h"

#include <strings.h>

#include <mutex>
#include <set>

#include "protocol/messages.h"

namespace pgcohere::session {

TrackedNames::TrackedNames(const std::vector<std::string>& extra)
    : names_{"client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "standard_conforming_strings",
             "application_name"} {
  for (const auto& e : extra)
    if (canonical(e).empty()) names_.push_back(e);
}

std::string_view TrackedNames::canonical(std::string_view name) const {
  for (const auto& n : names_)
    if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) return n;
  return {};
}

std::string_view intern_name(std::string_view name) {
  static std::mutex mutex;
  static std::set<std::string, std::less<>> names;  // node-based: a name never moves
  std::lock_guard lock(mutex);
  auto it = names.find(name);
  if (it == names.end()) it = names.emplace(name).first;
  return *it;
}

const std::string* ParamMap::get(std::string_view name) const {
  for (const auto& [k, v] : entries())
    if (k == name) return &v;
  return nullptr;
}

const ParamMap::Entries& ParamMap::entries() const {
  static const Entries none;
  return data_ ? data_->entries : none;
}

ParamMap::Data& ParamMap::own() {
  if (!data_) data_ = std::make_shared<Data>();
  else if (data_.use_count() > 1) data_ = std::make_shared<Data>(*data_);
  return *data_;
}

bool ParamMap::share_if_equal(const ParamMap& other) {
  if (data_ == other.data_) return true;
  if (!data_ || !other.data_ || data_->fingerprint != other.data_->fingerprint ||
      data_->entries != other.data_->entries)
    return false;
  data_ = other.data_;  // same values: version_ stays
  return true;
}

uint64_t ParamMap::entry_hash(std::string_view name, std::string_view value) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over name NUL value
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  h = (h ^ 0xff) * 1099511628211ull;
  for (char c : value) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

bool ParamMap::set(std::string_view name, std::string_view value) {
  if (const std::string* current = get(name); current && *current == value) return false;
  Data& d = own();
  for (auto& [k, v] : d.entries)
    if (k == name) {
      d.fingerprint ^= entry_hash(k, v) ^ entry_hash(k, value);  // XOR: order-independent
      v.assign(value);
      version_++;
      return true;
    }
  d.entries.emplace_back(intern_name(name), std::string(value));
  d.fingerprint ^= entry_hash(name, value);
  version_++;
  return true;
}

std::string sync_sql(const TrackedNames& tracked, const ParamMap& client, const ParamMap& server) {
  std::string sql;
  for (const auto& name : tracked.names()) {
    const std::string* want = client.get(name);
    if (!want) continue;
    const std::string* have = server.get(name);
    if (have && *have == *want) continue;
    sql += "SET " + name + " TO " + protocol::quote_literal(*want) + ";";
  }
  return sql;
}

}  // namespace pgcohere::session
