// Case-insensitive substring tests over statement text without copying it: the pre-filters
// run on every statement a client sends, most of which the cache never answers.
#pragma once

#include <algorithm>
#include <string_view>

namespace pgcohere::cache {

constexpr char ascii_fold(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

// Whether `text` contains `lower_needle` (given in lower case), ASCII letters folded.
inline bool contains_folded(std::string_view text, std::string_view lower_needle) {
  return std::search(text.begin(), text.end(), lower_needle.begin(), lower_needle.end(),
                     [](char t, char n) { return ascii_fold(t) == n; }) != text.end();
}

}  // namespace pgcohere::cache
