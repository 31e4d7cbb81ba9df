// Shared-memory layout of preload mode: one slot per database, each a byte ring of
// committed transactions' entry lines, drained by that database's worker.
#pragma once

#include "state.hpp"

namespace pgcohere {

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
