// Redis Cluster hash slots: CRC16 (XMODEM) of the key, or of its {hash tag}, mod 16384.
#pragma once

#include <cstdint>
#include <string_view>

namespace pgcohere::redis {

inline constexpr int kClusterSlots = 16384;

std::uint16_t crc16(std::string_view data);
int keyslot(std::string_view key);

}  // namespace pgcohere::redis
