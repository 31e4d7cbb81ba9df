// Preload mode: shared-memory ring (stub, filled in next).
#include "state.hpp"
namespace pgcohere {
void ring_request_shmem() {}
void ring_startup() {}
bool ring_available() { return false; }
int ring_slot_for(Oid) { return -1; }
bool ring_push(int, int64, const char*, std::size_t, uint64, bool) noexcept { return false; }
Counters ring_stats() { return {}; }
}  // namespace pgcohere
