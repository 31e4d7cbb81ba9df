// Redis Cluster hash slots: CRC16 (XMODEM) of the key, or of its {hash tag}, mod 16384.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pgcohere::redis {

inline constexpr int kClusterSlots = 16384;

std::uint16_t crc16(std::string_view data);
int keyslot(std::string_view key);
// The slot of every key that starts with `prefix` (literal text, e.g. a glob's
// literal_prefix()), if the prefix decides it: it holds the first '{' of such a key and a
// '}' after it with something in between, a complete hash tag as keyslot() reads it.
// Otherwise none: the rest of a key may hold its tag, or (an empty "{}", or no '}' yet)
// decide whether it has one.
std::optional<int> prefix_keyslot(std::string_view prefix);
// The same tag itself (the text between the braces), a view into `prefix`.
std::optional<std::string_view> prefix_hash_tag(std::string_view prefix);

}  // namespace pgcohere::redis
