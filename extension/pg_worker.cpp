// Preload mode: a launcher (no database) starts one publishing worker per database
// with pending entries; the worker drains its slot and NOTIFYs in batches.
#include <string_view>
#include <unordered_set>

#include "ring.hpp"
#include "settings.hpp"
#include "worker.hpp"
#include "xact.hpp"

extern "C" {
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"
#include "utils/wait_event.h"
PGDLLEXPORT void pgcohere_launcher_main(Datum arg);
PGDLLEXPORT void pgcohere_worker_main(Datum arg);
}

namespace pgcohere {

namespace {

constexpr std::size_t kMaxBatchBytes = 256 * 1024;  // drained per NOTIFY transaction

void launcher_exit(int, Datum) {
    if (ring() && ring()->launcher == MyProc) ring()->launcher = nullptr;
}

int g_worker_slot = -1;
void worker_exit(int, Datum) {
    if (g_worker_slot < 0) return;
    Slot* s = slot_at(g_worker_slot);
    LWLockAcquire(slot_lock(g_worker_slot), LW_EXCLUSIVE);
    if (s->worker == MyProc) s->worker = nullptr;
    bool lost = s->inflight;
    if (lost) {
        // Dying between drain and the NOTIFY's commit (terminated, FATAL): the drained
        // batch may never have been sent. The next worker publishes a resync instead.
        s->resync = true;
        strlcpy(s->reason, "worker-exited", sizeof s->reason);
        s->inflight = false;
    }
    PGPROC* launcher = ring()->launcher;
    LWLockRelease(slot_lock(g_worker_slot));
    if (lost && launcher) SetLatch(&launcher->procLatch);
}

bool start_worker(int i, BackgroundWorkerHandle** handle) {
    BackgroundWorker w;
    memset(&w, 0, sizeof w);
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    w.bgw_restart_time = BGW_NEVER_RESTART;
    strlcpy(w.bgw_library_name, "pgcohere", BGW_MAXLEN);
    strlcpy(w.bgw_function_name, "pgcohere_worker_main", BGW_MAXLEN);
    snprintf(w.bgw_name, BGW_MAXLEN, "pgcohere publisher for database %u", slot_at(i)->dboid);
    strlcpy(w.bgw_type, "pgcohere publisher", BGW_MAXLEN);
    w.bgw_main_arg = Int32GetDatum(i);
    w.bgw_notify_pid = MyProcPid;
    return RegisterDynamicBackgroundWorker(&w, handle);
}

// The signing key, read when the worker starts and again after each configuration reload
// (SIGHUP, as the daemon does), not once per batch: reading the file and preparing the
// HMAC key cost more than signing a payload. Null: not read yet.
std::unique_ptr<core::HmacSha256> g_signer;

void reload_if_asked() {
    if (ConfigReloadPending) {
        ConfigReloadPending = false;
        ProcessConfigFile(PGC_SIGHUP);
        g_signer.reset();
    }
}

// ---- the worker: drain, encode (C++), notify (PostgreSQL)

struct Batch {
    char* bytes = nullptr;  // records, palloc'd in the worker's context
    std::size_t len = 0;
    bool resync = false;
    char reason[32] = {0};
    uint32 records = 0;  // one per committed transaction
    uint64 start = 0, end = 0;  // ring positions of the records (read-your-writes: the header's pos)
};

Batch drain(int i, MemoryContext cxt) {
    Batch b;
    Slot* s = slot_at(i);
    LWLockAcquire(slot_lock(i), LW_EXCLUSIVE);
    uint64 pos = s->tail;
    while (pos < s->head && pos - s->tail < kMaxBatchBytes) {
        uint32 l;
        ring_read(i, pos, &l, 4);
        pos += kRecordHeader + l;
        b.records++;
    }
    b.len = pos - s->tail;
    b.start = s->tail;
    b.end = pos;
    b.resync = s->resync;
    if (b.resync) strlcpy(b.reason, s->reason, sizeof b.reason);
    s->resync = false;
    s->inflight = b.len > 0 || b.resync;
    if (b.len > 0) {
        b.bytes = (char*)MemoryContextAlloc(cxt, b.len);
        ring_read(i, s->tail, b.bytes, b.len);
        s->tail = pos;
    }
    LWLockRelease(slot_lock(i));
    return b;
}

struct Encoded {
    int n = 0;
    char** payloads = nullptr;
    uint64 entries = 0;
};

// C++ phase: dedup the batch's lines, chunk and sign. Result copied into palloc'd memory.
Encoded encode(const Batch& b, int i, const char* dbname, MemoryContext cxt) {
    Slot* s = slot_at(i);
    std::vector<std::string_view> lines;
    std::unordered_set<std::string_view> seen;
    std::string resync_line;
    int64 earliest = 0;
    if (b.resync) {
        resync_line = core::entry_line(core::kResync, b.reason);
        lines.push_back(resync_line);
    }
    for (std::size_t pos = 0; pos + kRecordHeader <= b.len;) {
        uint32 l;
        int64 commit_us;
        memcpy(&l, b.bytes + pos, 4);
        memcpy(&commit_us, b.bytes + pos + 4, 8);
        if (earliest == 0 || commit_us < earliest) earliest = commit_us;
        std::string_view text(b.bytes + pos + kRecordHeader, l);
        while (!text.empty()) {
            std::size_t nl = text.find('\n');
            std::string_view line = text.substr(0, nl);
            if (!line.empty() && seen.insert(line).second) lines.push_back(line);
            if (nl == std::string_view::npos) break;
            text.remove_prefix(nl + 1);
        }
        pos += kRecordHeader + l;
    }
    if (earliest == 0) earliest = unix_us(GetCurrentTimestamp());
    if (!g_signer) g_signer = std::make_unique<core::HmacSha256>(read_secret());  // throws if unreadable: resync
    core::PayloadParams params;
    params.dbname = dbname;
    params.signer = g_signer.get();
    params.epoch = s->epoch;
    params.commit_us = earliest;
    params.pos = core::PayloadParams::Pos::range;
    params.pos_start = b.start;
    params.pos_end = b.end;
    params.emit_empty = b.records > 0;  // markers of direct publishes carry no lines
    auto payloads = core::encode_payloads(lines, params, [&] { return ring_next_seq(i); });
    Encoded out;
    out.n = (int)payloads.size();
    out.entries = lines.size();
    out.payloads = (char**)MemoryContextAlloc(cxt, sizeof(char*) * (out.n ? out.n : 1));
    for (int k = 0; k < out.n; ++k) {
        out.payloads[k] = (char*)MemoryContextAlloc(cxt, payloads[k].size() + 1);
        memcpy(out.payloads[k], payloads[k].c_str(), payloads[k].size() + 1);
    }
    return out;
}

// PostgreSQL phase: one transaction with every payload. False if it failed (for
// instance a full NOTIFY queue); the caller then records a resync.
bool notify_all(const Encoded& e) {
    ErrorData* edata = nullptr;
    try {
        pg::call([&] {
            SetCurrentStatementStartTimestamp();
            StartTransactionCommand();
            pgstat_report_activity(STATE_RUNNING, "pgcohere: NOTIFY");
            for (int k = 0; k < e.n; ++k) Async_Notify(guc_channel, e.payloads[k]);
            CommitTransactionCommand();
            pgstat_report_activity(STATE_IDLE, nullptr);
        });
    } catch (const pg::PgError& err) {
        edata = err.edata;  // reported below, outside the catch block
    }
    if (edata == nullptr) return true;
    edata->elevel = LOG;  // the worker goes on: log the error, do not raise it
    ThrowErrorData(edata);
    FreeErrorData(edata);
    AbortCurrentTransaction();
    return false;
}

void mark_resync(int i, const char* reason) {
    Slot* s = slot_at(i);
    LWLockAcquire(slot_lock(i), LW_EXCLUSIVE);
    s->resync = true;
    s->inflight = false;  // the resync covers the failed batch
    strlcpy(s->reason, reason, sizeof s->reason);
    LWLockRelease(slot_lock(i));
}

void wait_ms(long ms) {
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
    reload_if_asked();
}

}  // namespace

void register_workers() {
    BackgroundWorker w;
    memset(&w, 0, sizeof w);
    w.bgw_flags = BGWORKER_SHMEM_ACCESS;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    w.bgw_restart_time = 1;
    strlcpy(w.bgw_library_name, "pgcohere", BGW_MAXLEN);
    strlcpy(w.bgw_function_name, "pgcohere_launcher_main", BGW_MAXLEN);
    strlcpy(w.bgw_name, "pgcohere launcher", BGW_MAXLEN);
    strlcpy(w.bgw_type, "pgcohere launcher", BGW_MAXLEN);
    RegisterBackgroundWorker(&w);
}

}  // namespace pgcohere

using namespace pgcohere;

// The launcher: starts a worker for every slot with pending entries and no worker.
void pgcohere_launcher_main(Datum) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    ring()->launcher = MyProc;
    before_shmem_exit(launcher_exit, 0);
    int n = ring()->nslots;
    auto** handles = (BackgroundWorkerHandle**)palloc0(sizeof(BackgroundWorkerHandle*) * n);
    for (;;) {
        for (int i = 0; i < n; ++i) {
            Slot* s = slot_at(i);
            if (handles[i]) {
                pid_t pid;
                if (GetBackgroundWorkerPid(handles[i], &pid) != BGWH_STOPPED) continue;
                pfree(handles[i]);
                handles[i] = nullptr;
                LWLockAcquire(slot_lock(i), LW_EXCLUSIVE);
                if (!s->started_ok) s->failures++;
                s->started_ok = false;
                LWLockRelease(slot_lock(i));
            }
            LWLockAcquire(slot_lock(i), LW_EXCLUSIVE);
            bool pending = s->dboid != InvalidOid && !s->parked && (s->head != s->tail || s->resync || s->inflight);
            bool need = pending && s->worker == nullptr;
            if (need && s->failures >= 5) {
                // Its worker cannot connect (typically a dropped database: nobody can
                // listen there). Discard the entries, but keep the slot and flag a resync:
                // if the database does exist, its next commit unparks the slot and the
                // resync goes out first. Slots of dropped databases are reused by
                // ring_slot_for().
                elog(LOG, "pgcohere: database %u is unreachable, discarding its pending invalidations (resync flagged)",
                     s->dboid);
                s->tail = s->head;
                s->resync = true;
                s->inflight = false;
                strlcpy(s->reason, "worker-failed", sizeof s->reason);
                s->parked = true;
                s->failures = 0;
                need = false;
            }
            LWLockRelease(slot_lock(i));
            if (need && !start_worker(i, &handles[i])) handles[i] = nullptr;  // no free worker slot: retry
        }
        wait_ms(1000);
    }
}

// A database's publisher.
void pgcohere_worker_main(Datum arg) {
    int i = DatumGetInt32(arg);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    Slot* s = slot_at(i);
    BackgroundWorkerInitializeConnectionByOid(s->dboid, InvalidOid, 0);
    LWLockAcquire(slot_lock(i), LW_EXCLUSIVE);
    if (s->worker != nullptr) {
        LWLockRelease(slot_lock(i));
        proc_exit(0);
    }
    s->worker = MyProc;
    if (s->inflight) {
        // The previous worker died between draining and committing its NOTIFY.
        s->resync = true;
        strlcpy(s->reason, "worker-restarted", sizeof s->reason);
        s->inflight = false;
    }
    s->started_ok = true;
    s->failures = 0;
    LWLockRelease(slot_lock(i));
    g_worker_slot = i;
    before_shmem_exit(worker_exit, 0);

    // The NOTIFY transactions commit without waiting for their WAL flush: a notification
    // needs no durability of its own. Listeners read it once its transaction is marked
    // committed (with an asynchronous commit, before the flush); a purge that was delivered
    // is done, and if the server crashes before a NOTIFY was read, shared memory is
    // re-created (new epoch) and the daemon resyncs. Waiting would add a WAL flush per
    // NOTIFY (at low concurrency one per user commit, which the next user commit queues
    // behind) and, with a synchronous standby, a network round trip.
    SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    char* dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
    CommitTransactionCommand();

    MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "pgcohere worker", ALLOCSET_DEFAULT_SIZES);
    TimestampTz idle_since = GetCurrentTimestamp();
    // Batching comes from the work itself: each pass drains everything that committed
    // while the previous NOTIFY transaction ran, so a batch grows with the commit rate and
    // with the time the machine takes to run the publisher, and a lone commit goes out at
    // once. No timer, no rate threshold.
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        reload_if_asked();
        MemoryContextReset(cxt);
        Batch b = drain(i, cxt);
        if (b.len == 0 && !b.resync) {
            TimestampTz now = GetCurrentTimestamp();
            if (TimestampDifferenceExceeds(idle_since, now, guc_worker_idle_ms)) {
                LWLockAcquire(slot_lock(i), LW_EXCLUSIVE);
                bool empty = s->head == s->tail && !s->resync;
                if (empty) s->worker = nullptr;
                LWLockRelease(slot_lock(i));
                if (empty) proc_exit(0);
                continue;
            }
            wait_ms(Min(guc_worker_idle_ms, 1000));
            continue;
        }
        idle_since = GetCurrentTimestamp();
        Encoded e;
        bool encoded = false;
        MemoryContext old = MemoryContextSwitchTo(cxt);
        static char why[256];
        why[0] = '\0';
        pg::entry([&] {
            try {
                e = encode(b, i, dbname, cxt);
                encoded = true;
            } catch (const std::exception& ex) {
                snprintf(why, sizeof why, "%s", ex.what());
            }
        });
        MemoryContextSwitchTo(old);
        if (!encoded) {
            elog(LOG, "pgcohere: could not encode a batch, publishing a resync instead: %s", why);
            mark_resync(i, "encode-failed");
            pg_atomic_fetch_add_u64(&ring()->notify_failures, 1);
            wait_ms(1000);
            continue;
        }
        if (!notify_all(e)) {
            mark_resync(i, "notify-failed");
            pg_atomic_fetch_add_u64(&ring()->notify_failures, 1);
            wait_ms(1000);
            continue;
        }
        LWLockAcquire(slot_lock(i), LW_EXCLUSIVE);
        s->inflight = false;
        LWLockRelease(slot_lock(i));
        pg_atomic_fetch_add_u64(&ring()->keys_published, e.entries);
        pg_atomic_fetch_add_u64(&ring()->notifications, (uint64)e.n);
    }
}
