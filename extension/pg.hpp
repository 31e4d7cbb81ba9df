// The PostgreSQL-facing layer: PostgreSQL headers (C linkage) and the error bridge
// between PostgreSQL's longjmp errors and C++ exceptions (TOOLCHAIN.md, section c).
#pragma once

// Standard headers first: port.h and c.h redefine printf, snprintf, Min, Max, ...
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
}

namespace pgcohere::pg {

// A PostgreSQL ERROR caught by call(): carries the ErrorData to re-raise later.
struct PgError : std::exception {
    explicit PgError(ErrorData* e) : edata(e) {}
    const char* what() const noexcept override { return edata && edata->message ? edata->message : "PostgreSQL error"; }
    ErrorData* edata;
};

// An error of ours with a SQLSTATE, raised at the boundary as a PostgreSQL ERROR.
struct UserError : std::runtime_error {
    UserError(int code, const std::string& msg, std::string hint_ = {})
        : std::runtime_error(msg), sqlstate(code), hint(std::move(hint_)) {}
    int sqlstate;
    std::string hint;
};

// Copies the current error out of ErrorContext and clears it (PG_CATCH helper).
ErrorData* take_error(MemoryContext old);

// Calls f() under its own PostgreSQL error frame: an ERROR becomes a PgError exception,
// so C++ destructors run. f must not hold non-trivial locals (it may be longjmp'd over)
// and must return void or a trivially copyable value (a pointer, a Datum, ...).
template <class F>
auto call(F&& f) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    MemoryContext old = CurrentMemoryContext;
    ErrorData* volatile edata = nullptr;
    if constexpr (std::is_void_v<R>) {
        PG_TRY();
        { f(); }
        PG_CATCH();
        { edata = take_error(old); }
        PG_END_TRY();
        if (edata) throw PgError(edata);
    } else {
        static_assert(std::is_trivially_copyable_v<R>);
        R result{};  // assigned in a lambda frame, so setjmp cannot clobber it
        call([&] { result = f(); });
        return result;
    }
}

// Raises the captured failure as a PostgreSQL ERROR; called only after the try block
// of entry() has ended, so that no C++ frame is alive during the longjmp.
[[noreturn]] void raise(ErrorData* edata, int sqlstate, const char* message, const char* hint);

// The boundary every extern "C" entry point goes through: runs body(), turns any C++
// exception into a PostgreSQL ERROR raised after every C++ destructor has run.
template <class F>
void entry(F&& body) {
    ErrorData* edata = nullptr;
    int sqlstate = 0;
    static char message[1024];
    static char hint[512];
    bool failed = false;
    try {
        body();
    } catch (const PgError& e) {
        edata = e.edata;
        failed = true;
    } catch (const UserError& e) {
        sqlstate = e.sqlstate;
        snprintf(message, sizeof message, "%s", e.what());
        snprintf(hint, sizeof hint, "%s", e.hint.c_str());
        failed = true;
    } catch (const std::bad_alloc&) {
        sqlstate = ERRCODE_OUT_OF_MEMORY;
        snprintf(message, sizeof message, "pgcohere: out of memory");
        hint[0] = '\0';
        failed = true;
    } catch (const std::exception& e) {
        sqlstate = ERRCODE_INTERNAL_ERROR;
        snprintf(message, sizeof message, "pgcohere: %s", e.what());
        hint[0] = '\0';
        failed = true;
    } catch (...) {
        sqlstate = ERRCODE_INTERNAL_ERROR;
        snprintf(message, sizeof message, "pgcohere: unknown C++ exception");
        hint[0] = '\0';
        failed = true;
    }
    if (failed) raise(edata, sqlstate, message, hint);
}

}  // namespace pgcohere::pg
