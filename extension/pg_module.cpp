// Module entry: settings, callbacks, and (when preloaded) shared memory and workers.
#include "ring.hpp"
#include "rules.hpp"
#include "settings.hpp"
#include "worker.hpp"
#include "xact.hpp"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace pgcohere {

char* guc_channel = nullptr;
bool guc_enabled = true;
char* guc_secret_file = nullptr;
int guc_max_keys_per_xact = 10000;
int guc_ring_size_kb = 1024;
int guc_max_databases = 8;
int guc_worker_idle_ms = 2000;
bool guc_deterministic = false;
char* guc_published = nullptr;
int guc_publish_mode = PUBLISH_AUTO;
bool guc_warn_undeclared_keys = true;
bool g_preloaded = false;

namespace {

bool check_channel(char** newval, void**, GucSource) {
    if (*newval == nullptr || (*newval)[0] == '\0') {
        GUC_check_errmsg("pgcohere.channel must not be empty");
        return false;
    }
    if (strlen(*newval) >= NAMEDATALEN) {
        GUC_check_errmsg("pgcohere.channel must be shorter than %d bytes", NAMEDATALEN);
        return false;
    }
    return true;
}

const struct config_enum_entry publish_modes[] = {
    {"auto", PUBLISH_AUTO, false}, {"direct", PUBLISH_DIRECT, false}, {nullptr, 0, false}};

void define_settings() {
    DefineCustomEnumVariable("pgcohere.publish_mode", "How commits publish: auto (the ring when preloaded) or direct.",
                             "direct: the committing backend NOTIFYs at pre-commit, even when preloaded.",
                             &guc_publish_mode, PUBLISH_AUTO, publish_modes, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pgcohere.channel", "NOTIFY channel that invalidations are published on.", nullptr,
                               &guc_channel, "pgcohere", PGC_SUSET, 0, check_channel, nullptr, nullptr);
    DefineCustomBoolVariable("pgcohere.enabled", "Collect invalidations from watched tables.",
                             "Superuser only: turning it off loses invalidations.", &guc_enabled, true, PGC_SUSET, 0,
                             nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pgcohere.secret_file", "File holding the HMAC-SHA256 secret that signs payloads.",
                               "Readable only by superusers (and the server), like the file itself.", &guc_secret_file,
                               "", PGC_SUSET, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgcohere.max_keys_per_xact",
                            "Entries a transaction collects before it publishes coarse patterns instead.", nullptr,
                            &guc_max_keys_per_xact, 10000, 1, INT_MAX / 2, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "pgcohere.worker_idle_timeout", "Idle time after which a database's publishing worker exits (preload mode).",
        nullptr, &guc_worker_idle_ms, 2000, 100, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("pgcohere.warn_undeclared_keys",
                             "pgcohere.invalidate() warns about keys that no rule and no declared key family covers.",
                             "A resync purges only covered keys; declare families with pgcohere.declare_keys().",
                             &guc_warn_undeclared_keys, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "pgcohere.deterministic", "Tests only: epoch 0, commit time 0, seqs from the pgcohere.seq sequence.", nullptr,
        &guc_deterministic, false, PGC_SUSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
    // Read-your-writes (docs/cache.md): set by the commit of a transaction that published
    // invalidations; GUC_REPORT sends it to the client (a ParameterStatus before that
    // commit's ReadyForQuery), so the pooler learns the position its purge must reach.
    DefineCustomStringVariable("pgcohere.published",
                               "Epoch and position of the invalidations of this session's last publishing commit.",
                               "Set by pgcohere at commit; cannot be changed.", &guc_published, "", PGC_INTERNAL,
                               GUC_REPORT | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE, nullptr, nullptr, nullptr);
    if (g_preloaded) {  // postmaster-level settings exist only with shared_preload_libraries
        DefineCustomIntVariable("pgcohere.ring_size", "Size of each database's shared-memory ring (preload mode).",
                                nullptr, &guc_ring_size_kb, 1024, 16, 1024 * 1024, PGC_POSTMASTER, GUC_UNIT_KB, nullptr,
                                nullptr, nullptr);
        DefineCustomIntVariable("pgcohere.max_databases", "Databases that can publish through the ring (preload mode).",
                                nullptr, &guc_max_databases, 8, 1, 1024, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    }
    // Last: it removes placeholders of pgcohere.* settings not defined above.
    MarkGUCPrefixReserved("pgcohere");
}

}  // namespace

}  // namespace pgcohere

void _PG_init(void) {
    using namespace pgcohere;
    g_preloaded = process_shared_preload_libraries_in_progress;
    define_settings();
    register_xact_callbacks();
    register_rules_cache();
    if (!g_preloaded) return;
    ring_request_shmem();
    register_workers();
}
