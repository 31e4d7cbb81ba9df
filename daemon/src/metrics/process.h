// Process metrics (CPU time, memory, descriptors, start time) read from /proc at scrape
// time, like the standard Prometheus process collector but with the pgcohere_ prefix.
#pragma once

#include "metrics/registry.h"

namespace pgcohere::metrics {

// pgcohere_process_cpu_seconds_total, _resident_memory_bytes, _virtual_memory_bytes,
// _open_fds, _max_fds, _start_time_seconds, _threads.
void collect_process_metrics(Exposition& e);

// Registers collect_process_metrics with the global registry once per process.
void register_process_metrics();

}  // namespace pgcohere::metrics
