// Preload mode: the shared ring. Producers are committing backends (after commit, so
// pushing never errors); the consumer is the database's worker (pg_worker.cpp).
#include <algorithm>

#include "ring.hpp"
#include "settings.hpp"

extern "C" {
#include "utils/syscache.h"
}

namespace pgcohere {

namespace {

RingShared* g_ring = nullptr;
LWLockPadded* g_locks = nullptr;
shmem_request_hook_type prev_shmem_request = nullptr;
shmem_startup_hook_type prev_shmem_startup = nullptr;
int g_my_slot = -1;  // this backend's database's slot, once claimed

constexpr const char* kTranche = "pgcohere";

std::size_t slot_stride() { return MAXALIGN(sizeof(Slot)) + MAXALIGN((std::size_t)guc_ring_size_kb * 1024); }
std::size_t shmem_size() { return MAXALIGN(sizeof(RingShared)) + (std::size_t)guc_max_databases * slot_stride(); }

extern "C" void request_hook(void) {
    if (prev_shmem_request) prev_shmem_request();
    RequestAddinShmemSpace(shmem_size());
    RequestNamedLWLockTranche(kTranche, guc_max_databases + 1);
}

extern "C" void startup_hook(void) {
    if (prev_shmem_startup) prev_shmem_startup();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    g_ring = (RingShared*)ShmemInitStruct("pgcohere ring", shmem_size(), &found);
    g_locks = GetNamedLWLockTranche(kTranche);
    if (!found) {
        memset(g_ring, 0, shmem_size());
        g_ring->nslots = guc_max_databases;
        g_ring->capacity = MAXALIGN((uint64)guc_ring_size_kb * 1024);
        pg_atomic_init_u64(&g_ring->keys_queued, 0);
        pg_atomic_init_u64(&g_ring->keys_published, 0);
        pg_atomic_init_u64(&g_ring->notifications, 0);
        pg_atomic_init_u64(&g_ring->coarsened_xacts, 0);
        pg_atomic_init_u64(&g_ring->ring_overflows, 0);
        pg_atomic_init_u64(&g_ring->notify_failures, 0);
    }
    LWLockRelease(AddinShmemInitLock);
}

void ring_write(int i, uint64 pos, const void* src, std::size_t len) {
    uint64 cap = g_ring->capacity;
    std::size_t off = pos % cap;
    std::size_t first = std::min<std::size_t>(len, cap - off);
    memcpy(slot_data(i) + off, src, first);
    if (first < len) memcpy(slot_data(i), (const char*)src + first, len - first);
}

}  // namespace

RingShared* ring() { return g_ring; }
Slot* slot_at(int i) { return (Slot*)((char*)g_ring + MAXALIGN(sizeof(RingShared)) + (std::size_t)i * slot_stride()); }
char* slot_data(int i) { return (char*)slot_at(i) + MAXALIGN(sizeof(Slot)); }
LWLock* table_lock() { return &g_locks[0].lock; }
LWLock* slot_lock(int i) { return &g_locks[i + 1].lock; }

void ring_read(int i, uint64 pos, void* dst, std::size_t len) {
    uint64 cap = g_ring->capacity;
    std::size_t off = pos % cap;
    std::size_t first = std::min<std::size_t>(len, cap - off);
    memcpy(dst, slot_data(i) + off, first);
    if (first < len) memcpy((char*)dst + first, slot_data(i), len - first);
}

void ring_request_shmem() {
    prev_shmem_request = shmem_request_hook;
    shmem_request_hook = request_hook;
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = startup_hook;
}

bool ring_available() { return g_ring != nullptr; }

uint64 ring_capacity() { return g_ring ? g_ring->capacity : 0; }

namespace {

void claim(int i, Oid dboid) {
    Slot* s = slot_at(i);
    LWLockAcquire(slot_lock(i), LW_EXCLUSIVE);
    s->dboid = dboid;
    s->epoch = (uint64)unix_us(GetCurrentTimestamp());
    pg_atomic_init_u64(&s->next_seq, 1);
    s->head = s->tail = 0;
    s->resync = false;
    s->inflight = false;
    s->worker = nullptr;
    s->started_ok = false;
    s->failures = 0;
    s->parked = false;
    LWLockRelease(slot_lock(i));
}

int claim_free(Oid dboid) {
    for (int i = 0; i < g_ring->nslots; ++i)
        if (slot_at(i)->dboid == dboid) return i;
    for (int i = 0; i < g_ring->nslots; ++i) {
        if (slot_at(i)->dboid != InvalidOid) continue;
        claim(i, dboid);
        return i;
    }
    return -1;
}

}  // namespace

int ring_slot_for(Oid dboid) {
    if (g_my_slot >= 0 && slot_at(g_my_slot)->dboid == dboid) return g_my_slot;
    LWLockAcquire(table_lock(), LW_EXCLUSIVE);
    int found = claim_free(dboid);
    LWLockRelease(table_lock());
    if (found < 0) {
        // Every slot is taken: reuse one whose database was dropped (nobody can listen
        // there any more). Existence is checked in the catalog without holding our locks.
        // Plain palloc'd data: this runs under pg::call and may be longjmp'd over.
        Oid* dropped = (Oid*)palloc(sizeof(Oid) * g_ring->nslots);
        int ndropped = 0;
        for (int i = 0; i < g_ring->nslots; ++i) {
            Oid db = slot_at(i)->dboid;
            if (db != InvalidOid && !SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(db))) dropped[ndropped++] = db;
        }
        LWLockAcquire(table_lock(), LW_EXCLUSIVE);
        found = claim_free(dboid);
        for (int i = 0; i < g_ring->nslots && found < 0; ++i) {
            Slot* s = slot_at(i);
            if (s->worker == nullptr && std::find(dropped, dropped + ndropped, s->dboid) != dropped + ndropped) {
                claim(i, dboid);
                found = i;
            }
        }
        LWLockRelease(table_lock());
        pfree(dropped);
    }
    g_my_slot = found;
    return found;
}

bool ring_push(int i, int64 commit_us, const char* data, std::size_t len, uint64 nkeys, bool coarsened, uint64* epoch,
               uint64* pos) noexcept {
    // Runs in the COMMIT callback: LWLocks and memcpy only, never an error.
    *epoch = *pos = 0;
    Slot* s = slot_at(i);
    LWLockAcquire(slot_lock(i), LW_EXCLUSIVE);
    if (s->dboid != MyDatabaseId) {
        // The slot was taken from this database after pre-commit chose it (it must not
        // be written: it may be another database's ring now). Claim one again: a newly
        // claimed slot has a new epoch, so the daemon resyncs. Lock order: table, slot.
        LWLockRelease(slot_lock(i));
        LWLockAcquire(table_lock(), LW_EXCLUSIVE);
        i = claim_free(MyDatabaseId);
        LWLockRelease(table_lock());
        if (i < 0) {
            // No slot left at all: nothing can carry a resync for this database. Counted;
            // later transactions of this database publish directly (no slot).
            pg_atomic_fetch_add_u64(&g_ring->ring_overflows, 1);
            g_my_slot = -1;
            return false;
        }
        g_my_slot = i;
        s = slot_at(i);
        LWLockAcquire(slot_lock(i), LW_EXCLUSIVE);
    }
    bool ok;
    std::size_t need = kRecordHeader + len;
    ok = s->dboid == MyDatabaseId && need <= g_ring->capacity - (s->head - s->tail);
    // A push proves the database exists: a parked slot gets workers again.
    s->parked = false;
    // The worker drains everything it finds, so only the push into an empty ring (or an
    // overflow) needs to wake it: fewer latch signals under load.
    bool was_empty = s->head == s->tail;
    if (ok) {
        uint32 l = (uint32)len;
        ring_write(i, s->head, &l, 4);
        ring_write(i, s->head + 4, &commit_us, 8);
        ring_write(i, s->head + kRecordHeader, data, len);
        s->head += need;
    } else if (!s->resync) {
        s->resync = true;
        strlcpy(s->reason, "ring-overflow", sizeof s->reason);
    }
    // Read-your-writes: the record's end, or on overflow the head (the resync that covers
    // the lost record goes out in a batch drained after now, so before this is reached).
    if (s->dboid == MyDatabaseId) {
        *epoch = s->epoch;
        *pos = s->head;
    }
    PGPROC* wake = nullptr;
    if (was_empty || !ok) wake = s->worker ? s->worker : g_ring->launcher;
    LWLockRelease(slot_lock(i));
    if (ok) {
        pg_atomic_fetch_add_u64(&g_ring->keys_queued, nkeys);
        if (coarsened) pg_atomic_fetch_add_u64(&g_ring->coarsened_xacts, 1);
    } else {
        pg_atomic_fetch_add_u64(&g_ring->ring_overflows, 1);
    }
    if (wake) SetLatch(&wake->procLatch);
    return ok;
}

bool ring_stream(int i, uint64* epoch) {
    if (g_ring == nullptr || i < 0) return false;
    *epoch = slot_at(i)->epoch;
    return true;
}

uint64 ring_next_seq(int i) { return pg_atomic_fetch_add_u64(&slot_at(i)->next_seq, 1); }

void ring_count_direct(uint64 entries, uint64 notifications, bool coarsened) noexcept {
    if (g_ring == nullptr) return;
    pg_atomic_fetch_add_u64(&g_ring->keys_queued, entries);
    pg_atomic_fetch_add_u64(&g_ring->keys_published, entries);
    pg_atomic_fetch_add_u64(&g_ring->notifications, notifications);
    if (coarsened) pg_atomic_fetch_add_u64(&g_ring->coarsened_xacts, 1);
}

Counters ring_stats() {
    Counters c;
    c.keys_queued = pg_atomic_read_u64(&g_ring->keys_queued);
    c.keys_published = pg_atomic_read_u64(&g_ring->keys_published);
    c.notifications = pg_atomic_read_u64(&g_ring->notifications);
    c.coarsened_xacts = pg_atomic_read_u64(&g_ring->coarsened_xacts);
    c.ring_overflows = pg_atomic_read_u64(&g_ring->ring_overflows);
    c.notify_failures = pg_atomic_read_u64(&g_ring->notify_failures);
    return c;
}

}  // namespace pgcohere
