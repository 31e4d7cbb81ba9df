// Case-insensitive substring tests over statement text without copying it: the pre-filters
// of the cache and of client LISTEN run on every statement a client sends, and let almost
// all of them pass untouched without a parse.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::util {

constexpr char ascii_fold(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

// A fixed set of needles, given in lower case, searched for in one pass over the text with
// ASCII letters folded. The pass skips ahead by the two bytes at the end of a window as
// long as they cannot end the first `shortest` bytes of any needle (Wu and Manber's
// multi-pattern search), so most statements are rejected after a fraction of their bytes:
// a byte-by-byte pass cost a fifth of the pooler's own instructions per statement
// (callgrind, pgbench -S with the cache on and no policy matching).
class FoldedNeedles {
 public:
  FoldedNeedles() = default;
  explicit FoldedNeedles(std::vector<std::string> lower_needles);

  bool empty() const { return needles_.empty(); }
  bool found_in(std::string_view text) const;

 private:
  static constexpr std::size_t kBlocks = 1 << 12;
  // Six bits per byte: letters (either case), digits and '_' each get their own code; other
  // bytes share the rest, which only makes some skips shorter.
  static constexpr std::array<std::uint8_t, 256> kCodes = [] {
    std::array<std::uint8_t, 256> codes{};
    for (int c = 0; c < 256; ++c) codes[c] = static_cast<std::uint8_t>(38 + c % 26);
    for (int c = 'a'; c <= 'z'; ++c) codes[c] = codes[c - 'a' + 'A'] = static_cast<std::uint8_t>(c - 'a');
    for (int c = '0'; c <= '9'; ++c) codes[c] = static_cast<std::uint8_t>(26 + c - '0');
    codes['_'] = 36;
    codes['$'] = 37;
    return codes;
  }();
  static std::size_t block(char a, char b) {
    return std::size_t{kCodes[static_cast<unsigned char>(a)]} << 6 | kCodes[static_cast<unsigned char>(b)];
  }
  bool matches_at(const std::string& needle, std::string_view text, std::size_t start) const;
  bool found_byte_by_byte(std::string_view text) const;

  std::vector<std::string> needles_;  // ordered by the block that ends their first `shortest_` bytes
  std::size_t shortest_ = 0;
  std::vector<std::uint8_t> skip_;       // per block: how far the window may move
  std::vector<std::uint32_t> first_;     // per block: first_[b] .. first_[b + 1] in needles_
};

}  // namespace pgcohere::util
