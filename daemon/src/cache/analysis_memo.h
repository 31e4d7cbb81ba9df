// A bounded LRU of analyze() results by exact query text. analyze() costs a full
// libpg_query parse (tens of microseconds); an Analysis depends on the text alone, so a
// repeated text (a named statement's Parse, a simple query sent again) need not be parsed
// twice. Pure; one per event loop (not thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cache/query_analysis.h"

namespace pgcohere::cache {

class AnalysisMemo {
 public:
  // Texts longer than max_text_bytes are analysed every time (they would crowd out the rest).
  explicit AnalysisMemo(std::size_t capacity = 4096, std::size_t max_text_bytes = 16384)
      : capacity_(capacity), max_text_bytes_(max_text_bytes) {}

  // analyze(sql), from memory when the same text was analysed recently. The result stays
  // valid after its entry is evicted.
  std::shared_ptr<const Analysis> analyze(std::string_view sql);

  std::size_t size() const { return index_.size(); }
  std::uint64_t hits() const { return hits_; }
  std::uint64_t misses() const { return misses_; }

 private:
  struct Entry {
    std::string text;
    std::shared_ptr<const Analysis> analysis;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Equal {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };

  std::size_t capacity_;
  std::size_t max_text_bytes_;
  std::list<Entry> lru_;  // most recently used first
  // Keys view the text owned by the list entry (list nodes never move).
  std::unordered_map<std::string_view, std::list<Entry>::iterator, Hash, Equal> index_;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

}  // namespace pgcohere::cache
