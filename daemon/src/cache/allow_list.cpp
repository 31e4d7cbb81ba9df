// The allow-lists. Every pg_catalog overload of a listed function (within the argument
// counts given) is IMMUTABLE in PostgreSQL 15; re-check with the query in docs/cache.md
// before adding a name.
#include "cache/allow_list.h"

#include <algorithm>
#include <array>

namespace pgcohere::cache {
namespace {

using K = FunctionKind;

// Sorted by name (binary search).
constexpr std::array kFunctions{
    AllowedFunction{"abs", K::scalar, 1, 1},
    AllowedFunction{"array_agg", K::aggregate, 1, 1},
    AllowedFunction{"array_length", K::scalar, 2, 2},
    AllowedFunction{"avg", K::aggregate, 1, 1},
    AllowedFunction{"bool_and", K::aggregate, 1, 1},
    AllowedFunction{"bool_or", K::aggregate, 1, 1},
    AllowedFunction{"btrim", K::scalar, 1, 2},  // TRIM(BOTH ...)
    AllowedFunction{"cardinality", K::scalar, 1, 1},
    AllowedFunction{"ceil", K::scalar, 1, 1},
    AllowedFunction{"ceiling", K::scalar, 1, 1},
    AllowedFunction{"char_length", K::scalar, 1, 1},
    AllowedFunction{"character_length", K::scalar, 1, 1},
    AllowedFunction{"count", K::aggregate, 0, 1},  // count(*) has no argument
    AllowedFunction{"dense_rank", K::window, 0, 0},
    AllowedFunction{"floor", K::scalar, 1, 1},
    AllowedFunction{"left", K::scalar, 2, 2},
    AllowedFunction{"length", K::scalar, 1, 1},       // length(bytea, name) is STABLE
    AllowedFunction{"like_escape", K::scalar, 2, 2},  // LIKE ... ESCAPE
    AllowedFunction{"lower", K::scalar, 1, 1},
    AllowedFunction{"ltrim", K::scalar, 1, 2},  // TRIM(LEADING ...)
    AllowedFunction{"max", K::aggregate, 1, 1},
    AllowedFunction{"min", K::aggregate, 1, 1},
    AllowedFunction{"mod", K::scalar, 2, 2},
    AllowedFunction{"octet_length", K::scalar, 1, 1},
    AllowedFunction{"position", K::scalar, 2, 2},  // POSITION(a IN b)
    AllowedFunction{"rank", K::window, 0, 0},
    AllowedFunction{"replace", K::scalar, 3, 3},
    AllowedFunction{"right", K::scalar, 2, 2},
    AllowedFunction{"round", K::scalar, 1, 2},
    AllowedFunction{"row_number", K::window, 0, 0},
    AllowedFunction{"rtrim", K::scalar, 1, 2},  // TRIM(TRAILING ...)
    AllowedFunction{"sign", K::scalar, 1, 1},
    AllowedFunction{"split_part", K::scalar, 3, 3},
    AllowedFunction{"starts_with", K::scalar, 2, 2},
    AllowedFunction{"string_agg", K::aggregate, 2, 2},
    AllowedFunction{"strpos", K::scalar, 2, 2},
    AllowedFunction{"substr", K::scalar, 2, 3},
    AllowedFunction{"substring", K::scalar, 2, 3},  // SUBSTRING(a FROM b FOR c)
    AllowedFunction{"sum", K::aggregate, 1, 1},
    AllowedFunction{"trunc", K::scalar, 1, 2},
    AllowedFunction{"upper", K::scalar, 1, 1},
};

// Builtin operators. The parser turns != into <>, LIKE into ~~, ILIKE into ~~*, NOT LIKE
// into !~~. A few overloads are STABLE only because of TimeZone (timestamptz +/- interval,
// timestamptz compared with date or timestamp) or of the output function of a non-text
// operand of || (DateStyle, IntervalStyle, TimeZone, extra_float_digits, bytea_output):
// all of these are in the cache key.
constexpr std::array<std::string_view, 17> kOperators{
    "!=", "!~~", "!~~*", "%", "*", "+", "-", "/", "<", "<=", "<>", "=", ">", ">=", "||", "~~", "~~*",
};

// Cast targets whose input and output depend on nothing outside the key (DateStyle,
// IntervalStyle, TimeZone, extra_float_digits, bytea_output are in it). The names are as
// the parser writes them: `integer` becomes pg_catalog.int4, `timestamp with time zone`
// pg_catalog.timestamptz, `char(n)` pg_catalog.bpchar.
constexpr std::array<std::string_view, 20> kCastTypes{
    "bool", "bpchar", "bytea",   "date", "float4", "float8",    "int2",        "int4",   "int8", "interval",
    "json", "jsonb",  "numeric", "text", "time",   "timestamp", "timestamptz", "timetz", "uuid", "varchar",
};

template <typename Array>
bool sorted_contains(const Array& a, std::string_view name) {
  return std::binary_search(a.begin(), a.end(), name);
}

}  // namespace

const AllowedFunction* find_allowed_function(std::string_view name) {
  auto it = std::lower_bound(kFunctions.begin(), kFunctions.end(), name,
                             [](const AllowedFunction& f, std::string_view n) { return f.name < n; });
  if (it == kFunctions.end() || it->name != name) return nullptr;
  return &*it;
}

bool is_allowed_operator(std::string_view name) { return sorted_contains(kOperators, name); }
bool is_allowed_cast_type(std::string_view name) { return sorted_contains(kCastTypes, name); }

bool allow_lists_are_sorted() {
  auto by_name = [](const AllowedFunction& a, const AllowedFunction& b) { return a.name < b.name; };
  return std::is_sorted(kFunctions.begin(), kFunctions.end(), by_name) &&
         std::is_sorted(kOperators.begin(), kOperators.end()) && std::is_sorted(kCastTypes.begin(), kCastTypes.end());
}

}  // namespace pgcohere::cache
