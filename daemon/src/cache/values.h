// Renders the value of a row equality exactly as PostgreSQL's output function of the
// column's type would print it, so that the entry's tag `row:<oid>:<col>=<value>` equals
// the tag the extension publishes for a changed row. nullopt: not rendered exactly (the
// caller falls back to the table tag).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgcohere::cache {

// The column types of pgcohere.cache_catalog()'s by_types.
enum class ColumnType { int2, int4, int8, text, varchar, uuid, other };
ColumnType column_type(std::string_view by_type);  // unknown names are `other`

// Type OIDs that matter for parameters (pg_type.oid, fixed since PostgreSQL 7).
namespace oid {
inline constexpr std::uint32_t unspecified = 0, int8 = 20, int2 = 21, int4 = 23, text = 25, unknown = 705,
                               varchar = 1043, uuid = 2950;
}

// Text input as int2in/int4in/int8in of PostgreSQL 15 read it (leading and trailing
// whitespace, an optional sign, decimal digits), range-checked for `t`.
std::optional<std::string> canonical_integer(std::string_view text, ColumnType t);
// Text input as uuid_in reads it (optional braces, hyphens after any group of four hex
// digits), printed lowercase 8-4-4-4-12.
std::optional<std::string> canonical_uuid(std::string_view text);
// Binary input (network byte order) of a parameter declared as `declared` (0: the
// column's own type) for a column of type `t`.
std::optional<std::string> binary_integer(std::string_view bytes, std::uint32_t declared, ColumnType t);
std::optional<std::string> binary_uuid(std::string_view bytes);

}  // namespace pgcohere::cache
