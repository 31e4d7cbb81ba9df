// The cache key: SHA-256 over everything that can change the bytes of the server's reply
// to one statement. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pgcohere::cache {

// Simple Query and extended Parse/Bind/Execute replies differ (RowDescription comes with
// Describe, formats may be binary), so entries of the two never mix.
enum class Protocol : std::uint8_t { simple = 1, extended = 2 };

struct KeyParts {
  std::string_view database;
  std::string_view role;
  // Session settings, as the server reports them (ParameterStatus) or as SHOW prints them.
  std::string_view search_path;
  std::string_view client_encoding;
  std::string_view date_style;
  std::string_view time_zone;
  std::string_view interval_style;
  std::string_view extra_float_digits;
  std::string_view bytea_output;
  std::string_view standard_conforming_strings;
  std::string_view query;  // the exact text
  std::span<const std::uint32_t> param_types;
  std::span<const std::optional<std::string>> param_values;  // nullopt: NULL (not "")
  std::span<const std::int16_t> param_formats;
  std::span<const std::int16_t> result_formats;
  Protocol protocol = Protocol::simple;
  // The message types of an extended batch ("PBDES", "BES", ...): which of ParseComplete,
  // BindComplete and RowDescription the reply holds.
  std::string_view batch_shape;
};

// The unambiguous byte encoding that is hashed: a version, then every part with its length
// (lists with their count, NULL with its own marker). Exposed for tests.
std::string encode_key_parts(const KeyParts& parts);
// Lowercase hex SHA-256 of encode_key_parts() (64 characters).
std::string cache_key(const KeyParts& parts);

}  // namespace pgcohere::cache
