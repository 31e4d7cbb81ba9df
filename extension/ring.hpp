// Preload mode's shared ring (pg_ring.cpp): one slot per database, each a byte ring of
// committed transactions' entry lines, drained by that database's worker. The functions
// first, then the shared-memory layout that the ring and the workers read.
#pragma once

#include <cstddef>

#include "pg.hpp"
#include "xact.hpp"

namespace pgcohere {

void ring_request_shmem();
bool ring_available();
uint64 ring_capacity();        // bytes per database
int ring_slot_for(Oid dboid);  // claims a slot; -1 if none is free
// Appends one committed transaction; never errors. False on overflow (resync recorded).
// *epoch and *pos: the ring epoch and the record's end position (on overflow the head),
// the commit's read-your-writes position; both 0 when no slot could take it.
bool ring_push(int slot, int64 commit_us, const char* data, std::size_t len, uint64 nkeys, bool coarsened,
               uint64* epoch, uint64* pos) noexcept;
Counters ring_stats();
void ring_count_direct(uint64 entries, uint64 notifications, bool coarsened) noexcept;
// The (epoch, seq) stream of slot i, shared by its worker and by direct publishers in
// a preloaded cluster, so that one database never has two interleaved epochs.
bool ring_stream(int slot, uint64* epoch);
uint64 ring_next_seq(int slot);

struct Slot {
    Oid dboid;                  // InvalidOid: free
    uint64 epoch;               // set when the slot is claimed (server start, shmem reinit)
    pg_atomic_uint64 next_seq;  // shared by the worker and direct-mode publishers of this database
    uint64 head;                // write position (bytes, monotonic)
    uint64 tail;                // read position
    bool resync;                // entries were lost: the next batch carries an 'r' entry
    bool inflight;              // a worker drained entries and has not committed their NOTIFY yet
    char reason[32];
    PGPROC* worker;   // running worker, or null
    bool started_ok;  // a worker of this slot got connected
    int failures;     // workers that exited before connecting
    // The launcher gave up starting workers (5 failures in a row, e.g. a dropped
    // database): pending entries were discarded and resync set; the next push (which
    // proves the database exists) unparks the slot.
    bool parked;
};

struct RingShared {
    int nslots;
    uint64 capacity;  // bytes of ring data per slot
    PGPROC* launcher;
    pg_atomic_uint64 keys_queued;
    pg_atomic_uint64 keys_published;
    pg_atomic_uint64 notifications;
    pg_atomic_uint64 coarsened_xacts;
    pg_atomic_uint64 ring_overflows;
    pg_atomic_uint64 notify_failures;
};

// Record in a ring: u32 length of the lines, i64 commit time (unix us), the lines.
inline constexpr std::size_t kRecordHeader = 4 + 8;

RingShared* ring();
Slot* slot_at(int i);
char* slot_data(int i);
LWLock* slot_lock(int i);  // protects slot i
LWLock* table_lock();      // protects claiming slots
void ring_read(int i, uint64 pos, void* dst, std::size_t len);

}  // namespace pgcohere
