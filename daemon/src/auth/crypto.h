// The few cryptographic primitives authentication needs, over OpenSSL, with byte strings
// as std::string (binary-safe) so that callers never handle OpenSSL types.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pgcohere::auth {

std::string sha256(std::string_view data);                           // 32 raw bytes
std::string hmac_sha256(std::string_view key, std::string_view data);  // 32 raw bytes
std::string pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations);
std::string md5_hex(std::string_view data);                          // 32 lowercase hex chars
// Cryptographically strong random bytes; throws std::runtime_error if OpenSSL cannot.
std::string random_bytes(std::size_t n);

std::string base64_encode(std::string_view raw);
// Strict RFC 4648 decoding (padding required, no whitespace); nullopt on any defect.
std::optional<std::string> base64_decode(std::string_view text);

// Same length and same bytes, in time that does not depend on where they differ.
bool constant_time_equal(std::string_view a, std::string_view b);
std::string xor_bytes(std::string_view a, std::string_view b);  // sizes must match

}  // namespace pgcohere::auth
