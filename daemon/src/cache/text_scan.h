// Case-insensitive substring tests over statement text without copying it: the pre-filters
// run on every statement a client sends, most of which the cache never answers.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::cache {

constexpr char ascii_fold(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

// A fixed set of needles, given in lower case, searched for in one pass over the text with
// ASCII letters folded: a position is compared only with the needles that begin with its
// folded byte. A pass per needle cost more than the rest of the pooler's own work on a
// statement (perf, pgbench -S with the cache on and no policy matching).
class FoldedNeedles {
 public:
  FoldedNeedles() = default;
  explicit FoldedNeedles(std::vector<std::string> lower_needles) : needles_(std::move(lower_needles)) {
    needles_.erase(std::remove_if(needles_.begin(), needles_.end(), [](const std::string& n) { return n.empty(); }),
                   needles_.end());
    std::sort(needles_.begin(), needles_.end(), [](const std::string& a, const std::string& b) {
      return static_cast<unsigned char>(a[0]) < static_cast<unsigned char>(b[0]);
    });
    // first_[c] .. first_[c + 1]: the needles that begin with byte c.
    for (const auto& n : needles_) ++first_[static_cast<unsigned char>(n[0]) + 1];
    for (std::size_t c = 1; c < first_.size(); ++c) first_[c] += first_[c - 1];
  }

  bool empty() const { return needles_.empty(); }

  bool found_in(std::string_view text) const {
    if (needles_.empty()) return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
      auto c = static_cast<unsigned char>(ascii_fold(text[i]));
      for (auto k = first_[c]; k < first_[c + 1]; ++k) {
        const std::string& n = needles_[k];
        if (n.size() <= text.size() - i &&
            std::equal(n.begin() + 1, n.end(), text.begin() + i + 1, [](char nc, char t) { return ascii_fold(t) == nc; }))
          return true;
      }
    }
    return false;
  }

 private:
  std::vector<std::string> needles_;
  std::array<std::uint32_t, 257> first_{};
};

}  // namespace pgcohere::cache
