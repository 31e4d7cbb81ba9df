// The names a cacheable statement may use: functions, operators, cast target types and
// SQL value functions. Each entry was checked against pg_proc/pg_operator of PostgreSQL 15
// (docs/cache.md lists them with the query that checks them). Anything not listed makes
// a statement not cacheable.
#pragma once

#include <string_view>

namespace pgcohere::cache {

enum class FunctionKind { scalar, aggregate, window };

struct AllowedFunction {
  std::string_view name;
  FunctionKind kind;
  int min_args;  // overloads outside [min_args, max_args] are not IMMUTABLE (length(bytea, name))
  int max_args;
};

// nullptr when `name` (pg_catalog or unqualified) is not allowed.
const AllowedFunction* find_allowed_function(std::string_view name);
bool is_allowed_operator(std::string_view name);
bool is_allowed_cast_type(std::string_view name);
// The lookups binary-search sorted tables; the unit tests check the order.
bool allow_lists_are_sorted();

}  // namespace pgcohere::cache
