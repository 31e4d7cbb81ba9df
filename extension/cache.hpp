// Query-cache policies on the extension side; defined in pg_cache.cpp.
#pragma once

#include "pg.hpp"

namespace pgcohere {

// The by_types name of a column (docs/cache.md): int2, int4, int8, text, varchar (with a
// deterministic collation), uuid, else "other": the daemon renders values of these
// types exactly as their output functions do, so only they get row tags.
const char* cache_by_type(Oid typid, Oid collid);

}  // namespace pgcohere
