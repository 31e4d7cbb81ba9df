// Preload mode's background workers (pg_worker.cpp): a launcher, and one worker per
// database that drains its ring slot and NOTIFYs in batches.
#pragma once

namespace pgcohere {

// Called from _PG_init when preloaded.
void register_workers();

}  // namespace pgcohere
