// CRC16-CCITT (XMODEM), as in the Redis Cluster specification.
#include "redis/keyslot.h"

namespace pgcohere::redis {

std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (unsigned char byte : data) {
    crc ^= static_cast<std::uint16_t>(byte) << 8;
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021) : static_cast<std::uint16_t>(crc << 1);
  }
  return crc;
}

int keyslot(std::string_view key) {
  // Only the first '{' counts, and only when a '}' follows with something in between.
  std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return crc16(key) & (kClusterSlots - 1);
}

std::optional<std::string_view> prefix_hash_tag(std::string_view prefix) {
  std::size_t open = prefix.find('{');
  if (open == std::string_view::npos) return std::nullopt;
  std::size_t close = prefix.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return std::nullopt;
  return prefix.substr(open + 1, close - open - 1);
}

std::optional<int> prefix_keyslot(std::string_view prefix) {
  auto tag = prefix_hash_tag(prefix);
  if (!tag) return std::nullopt;
  return crc16(*tag) & (kClusterSlots - 1);
}

}  // namespace pgcohere::redis
