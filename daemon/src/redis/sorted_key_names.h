// Redis key names kept sorted, so that the keys a glob can match are found by walking only
// the range of its literal prefix. The pure part of the pattern index (key_index.h).
#pragma once

#include <cstddef>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::redis {

class SortedKeyNames {
 public:
  void insert(std::string key) { keys_.insert(std::move(key)); }
  void erase(const std::string& key) { keys_.erase(key); }
  void clear() { keys_.clear(); }
  std::size_t size() const { return keys_.size(); }
  // Keys matching `pattern`, found by walking only the range of its literal prefix;
  // `visited` gets the number of names looked at.
  std::vector<std::string> match(std::string_view pattern, std::size_t* visited = nullptr) const;

 private:
  std::set<std::string, std::less<>> keys_;
};

}  // namespace pgcohere::redis
