// See folded_needles.h.
#include "util/folded_needles.h"

#include <algorithm>
#include <limits>

namespace pgcohere::util {

FoldedNeedles::FoldedNeedles(std::vector<std::string> lower_needles) : needles_(std::move(lower_needles)) {
  needles_.erase(std::remove_if(needles_.begin(), needles_.end(), [](const std::string& n) { return n.empty(); }),
                 needles_.end());
  if (needles_.empty()) return;
  shortest_ = std::min_element(needles_.begin(), needles_.end(), [](const auto& a, const auto& b) {
                return a.size() < b.size();
              })->size();
  if (shortest_ < 2) return;  // a one-byte needle: found_byte_by_byte()
  auto end_block = [this](const std::string& n) { return block(n[shortest_ - 2], n[shortest_ - 1]); };
  std::stable_sort(needles_.begin(), needles_.end(),
                   [&](const std::string& a, const std::string& b) { return end_block(a) < end_block(b); });
  first_.assign(kBlocks + 1, 0);
  for (const auto& n : needles_) ++first_[end_block(n) + 1];
  for (std::size_t b = 1; b < first_.size(); ++b) first_[b] += first_[b - 1];
  // A block that ends at byte q (1-based) of a needle's first `shortest_` bytes lets the
  // window move by shortest_ - q; one found nowhere in them, by shortest_ - 1.
  std::size_t most = std::min<std::size_t>(shortest_ - 1, std::numeric_limits<std::uint8_t>::max());
  skip_.assign(kBlocks, static_cast<std::uint8_t>(most));
  for (const auto& n : needles_)
    for (std::size_t q = 2; q <= shortest_; ++q) {
      auto& s = skip_[block(n[q - 2], n[q - 1])];
      s = static_cast<std::uint8_t>(std::min<std::size_t>(s, shortest_ - q));
    }
}

bool FoldedNeedles::matches_at(const std::string& needle, std::string_view text, std::size_t start) const {
  if (needle.size() > text.size() - start) return false;
  for (std::size_t j = 0; j < needle.size(); ++j)
    if (ascii_fold(text[start + j]) != needle[j]) return false;
  return true;
}

bool FoldedNeedles::found_byte_by_byte(std::string_view text) const {
  for (std::size_t i = 0; i < text.size(); ++i)
    for (const auto& n : needles_)
      if (matches_at(n, text, i)) return true;
  return false;
}

bool FoldedNeedles::found_in(std::string_view text) const {
  if (needles_.empty() || text.size() < shortest_) return false;
  if (shortest_ < 2) return found_byte_by_byte(text);
  // `end` is the last byte of a window of shortest_ bytes.
  for (std::size_t end = shortest_ - 1; end < text.size();) {
    std::size_t b = block(text[end - 1], text[end]);
    if (std::size_t s = skip_[b]) {
      end += s;
      continue;
    }
    std::size_t start = end + 1 - shortest_;
    for (auto k = first_[b]; k < first_[b + 1]; ++k)
      if (matches_at(needles_[k], text, start)) return true;
    ++end;
  }
  return false;
}

}  // namespace pgcohere::util
