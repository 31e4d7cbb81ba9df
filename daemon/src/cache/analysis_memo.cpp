// AnalysisMemo: list for recency, hash map of views into the list for lookup.
#include "cache/analysis_memo.h"

namespace pgcohere::cache {

std::shared_ptr<const Analysis> AnalysisMemo::analyze(std::string_view sql) {
  if (auto it = index_.find(sql); it != index_.end()) {
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->analysis;
  }
  ++misses_;
  auto result = std::make_shared<const Analysis>(pgcohere::cache::analyze(sql));
  if (capacity_ == 0 || sql.size() > max_text_bytes_) return result;
  if (index_.size() >= capacity_) {
    index_.erase(std::string_view(lru_.back().text));
    lru_.pop_back();
  }
  lru_.push_front(Entry{std::string(sql), result});
  index_.emplace(std::string_view(lru_.front().text), lru_.begin());
  return result;
}

}  // namespace pgcohere::cache
