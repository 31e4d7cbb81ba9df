// Named prepared statements in transaction pooling (PgBouncer 1.21 semantics): a client's
// protocol-level statement names map to pooler-wide statements ("PGC_<id>", one per
// distinct query text + parameter types), and each server connection remembers which of
// them it has prepared, in a bounded LRU.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace pgcohere::session {

struct Statement {
  uint64_t id = 0;
  std::string server_name;  // PGC_<id>
  std::string query;
  std::string param_types;  // raw count + OIDs from the client's Parse
};

// Pooler-wide: the same query text and types get the same statement while any client
// still holds it.
class StatementRegistry {
 public:
  std::shared_ptr<const Statement> intern(std::string_view query, std::string_view param_types);
  size_t size() const { return by_text_.size(); }

 private:
  uint64_t next_id_ = 1;
  std::unordered_map<std::string, std::weak_ptr<const Statement>> by_text_;
};

// One client's names. Empty names (the unnamed statement) are never tracked. The map is
// allocated by the first name: most clients never name a statement, and an empty
// unordered_map is 56 bytes that 10,000 idle clients would each hold.
class ClientStatements {
 public:
  void put(std::string_view name, std::shared_ptr<const Statement> s);
  const Statement* find(std::string_view name) const;
  bool erase(std::string_view name);
  void clear() { by_name_.reset(); }
  size_t size() const { return by_name_ ? by_name_->size() : 0; }

 private:
  std::unique_ptr<std::unordered_map<std::string, std::shared_ptr<const Statement>>> by_name_;
};

// What one server connection has prepared: an LRU bounded by max_prepared_statements,
// plus names whose existence is unknown (a batch failed after they were sent), which must
// be closed before they are prepared again.
class ServerStatements {
 public:
  explicit ServerStatements(size_t capacity = 200) : capacity_(capacity) {}
  bool has(uint64_t id);  // and marks it most recently used
  // Records id as prepared; returns the server name of an evicted statement to close, or "".
  std::string add(uint64_t id, const std::string& server_name);
  void forget_uncertain(uint64_t id, const std::string& server_name);  // see class comment
  bool uncertain(const std::string& server_name) const { return uncertain_.count(server_name) != 0; }
  void settle(const std::string& server_name) { uncertain_.erase(server_name); }
  void clear();  // DISCARD ALL / DEALLOCATE ALL ran on the server
  size_t size() const { return index_.size(); }
  void set_capacity(size_t n) { capacity_ = n == 0 ? 1 : n; }

 private:
  size_t capacity_;
  std::list<std::pair<uint64_t, std::string>> lru_;  // front = most recent
  std::unordered_map<uint64_t, std::list<std::pair<uint64_t, std::string>>::iterator> index_;
  std::unordered_set<std::string> uncertain_;
};

// The statement name of an SQL `DEALLOCATE [PREPARE] name` (one statement, optional
// semicolon, name optionally double-quoted), or "" for anything else (DEALLOCATE ALL too).
// Drivers (psycopg's cache rotation) deallocate protocol-level statements this way.
std::string deallocate_target(std::string_view sql);

}  // namespace pgcohere::session
