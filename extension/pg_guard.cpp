// The error bridge between PostgreSQL (longjmp) and C++ (exceptions).
#include "pg.hpp"

namespace pgcohere::pg {

ErrorData* take_error(MemoryContext old) {
    MemoryContextSwitchTo(old);
    ErrorData* edata = CopyErrorData();
    FlushErrorState();
    return edata;
}

void raise(ErrorData* edata, int sqlstate, const char* message, const char* hint) {
    if (edata) ReThrowError(edata);
    ereport(ERROR, (errcode(sqlstate), errmsg("%s", message), (hint && hint[0]) ? errhint("%s", hint) : 0));
    pg_unreachable();
}

}  // namespace pgcohere::pg
