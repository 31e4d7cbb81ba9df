// Prepared statement bookkeeping for transaction pooling (see prepared.h).
#include "session/prepared.h"

namespace pgcohere::session {

std::shared_ptr<const Statement> StatementRegistry::intern(std::string_view query, std::string_view param_types) {
  std::string key;
  key.reserve(query.size() + 1 + param_types.size());
  key.append(query).push_back('\0');
  key.append(param_types);
  auto& slot = by_text_[key];
  if (auto existing = slot.lock()) return existing;
  auto s = std::make_shared<Statement>();
  s->id = next_id_++;
  s->server_name = "PGC_" + std::to_string(s->id);
  s->query.assign(query);
  s->param_types.assign(param_types);
  slot = s;
  // Drop entries of statements no client holds any more, now and then, so the map stays
  // proportional to live statements.
  if (by_text_.size() > 1024 && (s->id & 1023) == 0) {
    for (auto it = by_text_.begin(); it != by_text_.end();)
      it = it->second.expired() ? by_text_.erase(it) : std::next(it);
  }
  return s;
}

namespace {
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
// Consumes a case-insensitive keyword followed by a space or the end.
bool keyword(std::string_view& s, std::string_view word) {
  if (s.size() < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i)
    if ((s[i] | 0x20) != word[i]) return false;
  if (s.size() > word.size() && !is_space(s[word.size()])) return false;
  s.remove_prefix(word.size());
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return true;
}
}  // namespace

std::string deallocate_target(std::string_view sql) {
  while (!sql.empty() && is_space(sql.front())) sql.remove_prefix(1);
  while (!sql.empty() && (is_space(sql.back()) || sql.back() == ';')) sql.remove_suffix(1);
  if (!keyword(sql, "deallocate")) return "";
  keyword(sql, "prepare");
  if (sql.empty()) return "";
  std::string name;
  if (sql.front() == '"') {
    for (size_t i = 1; i < sql.size(); ++i) {
      if (sql[i] == '"') {
        if (i + 1 < sql.size() && sql[i + 1] == '"') {
          name.push_back('"');
          ++i;
          continue;
        }
        return i + 1 == sql.size() ? name : "";
      }
      name.push_back(sql[i]);
    }
    return "";
  }
  for (char c : sql) {
    if (is_space(c) || c == ';' || c == '"') return "";
    name.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c | 0x20 : c));  // unquoted names fold
  }
  return name == "all" ? "" : name;
}

void ClientStatements::put(std::string_view name, std::shared_ptr<const Statement> s) {
  if (!by_name_) by_name_ = std::make_unique<decltype(by_name_)::element_type>();
  (*by_name_)[std::string(name)] = std::move(s);
}

const Statement* ClientStatements::find(std::string_view name) const {
  if (!by_name_ || by_name_->empty()) return nullptr;
  auto it = by_name_->find(std::string(name));
  return it == by_name_->end() ? nullptr : it->second.get();
}

bool ClientStatements::erase(std::string_view name) { return by_name_ && by_name_->erase(std::string(name)) != 0; }

bool ServerStatements::has(uint64_t id) {
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  lru_.splice(lru_.begin(), lru_, it->second);
  return true;
}

std::string ServerStatements::add(uint64_t id, const std::string& server_name) {
  if (has(id)) return "";
  lru_.emplace_front(id, server_name);
  index_[id] = lru_.begin();
  if (index_.size() <= capacity_) return "";
  auto victim = std::prev(lru_.end());
  std::string name = victim->second;
  index_.erase(victim->first);
  lru_.erase(victim);
  return name;
}

void ServerStatements::forget_uncertain(uint64_t id, const std::string& server_name) {
  auto it = index_.find(id);
  if (it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
  uncertain_.insert(server_name);
}

void ServerStatements::clear() {
  lru_.clear();
  index_.clear();
  uncertain_.clear();
}

}  // namespace pgcohere::session
