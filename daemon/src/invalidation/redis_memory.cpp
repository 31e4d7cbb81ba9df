// INFO memory parsing (see redis_memory.h).
#include "invalidation/redis_memory.h"

#include <charconv>

namespace pgcohere::invalidation {

namespace {
// The value of `field` at the start of a line, or nullopt.
std::optional<std::uint64_t> field_value(std::string_view info, std::string_view field) {
  for (std::size_t pos = 0; pos < info.size();) {
    std::size_t end = info.find('\n', pos);
    if (end == std::string_view::npos) end = info.size();
    std::string_view line = info.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = end + 1;
    // "used_memory:" must not match "used_memory_rss:", hence the exact name and colon.
    if (line.size() <= field.size() || line.substr(0, field.size()) != field || line[field.size()] != ':') continue;
    std::string_view value = line.substr(field.size() + 1);
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || ptr != value.data() + value.size()) return std::nullopt;
    return v;
  }
  return std::nullopt;
}
}  // namespace

std::optional<RedisMemory> parse_redis_memory(std::string_view info) {
  auto used = field_value(info, "used_memory");
  if (!used) return std::nullopt;
  return RedisMemory{*used, field_value(info, "maxmemory").value_or(0)};
}

}  // namespace pgcohere::invalidation
