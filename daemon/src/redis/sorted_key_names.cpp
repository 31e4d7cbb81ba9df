// Prefix range walk + glob match over the sorted names.
#include "redis/sorted_key_names.h"

#include "redis/glob.h"

namespace pgcohere::redis {

std::vector<std::string> SortedKeyNames::match(std::string_view pattern, std::size_t* visited) const {
  std::vector<std::string> out;
  std::string prefix = literal_prefix(pattern);
  std::size_t n = 0;
  for (auto it = keys_.lower_bound(prefix); it != keys_.end() && it->compare(0, prefix.size(), prefix) == 0; ++it) {
    ++n;
    if (glob_match(pattern, *it)) out.push_back(*it);
  }
  if (visited) *visited = n;
  return out;
}

}  // namespace pgcohere::redis
