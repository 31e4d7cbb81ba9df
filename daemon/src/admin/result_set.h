// What the admin console answers, before wire encoding: columns with type OIDs, text rows
// (nullopt = SQL NULL), the CommandComplete tag and NOTICEs. POOL encodes it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgcohere::admin {

namespace oid {
inline constexpr std::uint32_t int4 = 23;
inline constexpr std::uint32_t int8 = 20;
inline constexpr std::uint32_t text = 25;
inline constexpr std::uint32_t numeric = 1700;
inline constexpr std::uint32_t bytea = 17;
}  // namespace oid

struct Column {
  std::string name;
  std::uint32_t type_oid = oid::text;
  std::int16_t type_size = -1;  // RowDescription typlen: 4 for int4, 8 for int8, else -1
};

using Row = std::vector<std::optional<std::string>>;

struct Notice {
  std::string message;
  std::string detail;
};

struct ResultSet {
  std::vector<Column> columns;  // empty: no RowDescription (e.g. PAUSE, SHOW HELP)
  std::vector<Row> rows;
  std::string command_tag;      // "SHOW", "PAUSE", ...
  std::vector<Notice> notices;  // sent before the rows, severity NOTICE, SQLSTATE 00000
};

}  // namespace pgcohere::admin
