// Redis's memory use and limit, read from `INFO memory`, for the "Redis memory > 80 %"
// alert (pgcohere_redis_used_memory_bytes / pgcohere_redis_maxmemory_bytes).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pgcohere::invalidation {

struct RedisMemory {
  std::uint64_t used = 0;     // used_memory
  std::uint64_t maximum = 0;  // maxmemory; 0 means no limit
};

// The two fields of an INFO reply ("field:value" lines, CRLF or LF), or nullopt when
// used_memory is missing or not a number (an error reply, another section).
std::optional<RedisMemory> parse_redis_memory(std::string_view info);

}  // namespace pgcohere::invalidation
