// The extension's settings (GUCs) and whether it was preloaded; defined in pg_module.cpp.
#pragma once

namespace pgcohere {

extern char* guc_channel;
extern bool guc_enabled;
extern char* guc_secret_file;
extern int guc_max_keys_per_xact;
extern int guc_ring_size_kb;
extern int guc_max_databases;
extern int guc_worker_idle_ms;
enum PublishMode { PUBLISH_AUTO, PUBLISH_DIRECT };
extern int guc_publish_mode;
extern bool guc_warn_undeclared_keys;
extern bool guc_deterministic;  // tests: epoch and commit-us 0
extern char* guc_published;     // "<epoch> <pos>" of this session's last publishing commit (GUC_REPORT)
extern bool g_preloaded;        // loaded through shared_preload_libraries

}  // namespace pgcohere
