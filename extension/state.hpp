// Declarations shared by the PostgreSQL-facing files (pg_*.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core.hpp"
#include "pg.hpp"

namespace pgcohere {

// ---- settings (pg_module.cpp)
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

// ---- rules of a relation (pg_rules.cpp)
struct CompiledRule {
    core::Template tmpl;
    std::vector<int> value_index;  // per tmpl.columns[i]: index into RelRules::attnums, -1 if missing
};
// The query-cache tags of one cache-enabled relation (the relation itself or, for a
// partition, an ancestor: a query names the parent, so its tags must go too).
struct CacheTags {
    Oid policy = InvalidOid;  // the relation named in pgcohere.cache_policies
    std::string tbl;          // tbl:<oid>
    std::string all;          // all:<oid>
    struct Row {
        std::string prefix;  // row:<oid>:<column>=
        int value_index;     // into RelRules::attnums
    };
    std::vector<Row> rows;  // `by` columns whose values the daemon can match (cache_by_type)
};
struct RelRules {
    Oid relid = InvalidOid;    // the relation the trigger fired on
    Oid watched = InvalidOid;  // the relation named in pgcohere.rules (a partition's ancestor)
    std::string tag;           // table:<schema>.<table> of the watched relation
    std::vector<CompiledRule> rules;
    std::vector<CacheTags> cache;     // this relation's and its ancestors' cache policies
    std::vector<Oid> ancestors;       // partition ancestors: a change of their rules or policies reloads these
    std::vector<AttrNumber> attnums;  // columns read by any rule or row tag
    std::vector<Oid> typoutput;
    // Some column's text depends on session settings (DateStyle, TimeZone, ...): render
    // under fixed settings so that every session produces the same keys.
    bool fixed_settings = false;
};
// Rules that apply to rel (its own or a partitioned ancestor's); cached per backend,
// dropped on relcache invalidation. Never null; rules empty if the table has none.
// Hold the returned pointer while using the rules: an invalidation processed meanwhile
// (any catalog access can process one) drops only the cache's reference.
std::shared_ptr<const RelRules> rules_for(Relation rel);
void register_rules_cache();
// What a resync purges besides the cache namespace: the coarse pattern of every rule and
// of every declared key family (pgcohere.coarse_patterns() without the tags), compiled.
// Cached per backend like the rules; hold the pointer while using it.
struct KeyFamilies {
    std::vector<core::Glob> globs;
};
std::shared_ptr<const KeyFamilies> key_families();
// The by_types name of a column (docs/cache.md): int2, int4, int8, text, varchar (with a
// deterministic collation), uuid, else "other": the daemon renders values of these
// types exactly as their output functions do, so only they get row tags.
const char* cache_by_type(Oid typid, Oid collid);
// Parses templates and checks their columns against relid; throws UserError.
std::vector<core::Template> check_templates(Oid relid, const std::vector<std::string>& templates);

// ---- transaction state (pg_xact.cpp)
void register_xact_callbacks();
bool queue_entry(char kind, std::string_view text);  // false: already queued in this transaction
// invalidate() reports a key that no resync covers once per key family per transaction,
// and at most kMaxFamilyWarnings families (then one last warning says that more are not).
inline constexpr std::size_t kMaxFamilyWarnings = 10;
enum class FamilyWarning { warn, skip, capped };
FamilyWarning note_uncovered_family(const std::string& family);
std::vector<std::string> pending_lines();  // this transaction's entry lines, sorted
bool over_key_limit();                     // past pgcohere.max_keys_per_xact (marks the transaction coarsened)
void queue_rendered(const CompiledRule& rule, const core::Rendered& r);
void queue_coarse(const RelRules& rr);  // every rule's coarse pattern plus the tag, tbl: and all: tags
// Policy changes and DDL: "c <oid>" (if policy_changed), tbl:<oid> and all:<oid>.
void queue_cache_change(Oid relid, bool policy_changed);

struct Counters {
    uint64 keys_queued = 0;
    uint64 keys_published = 0;
    uint64 notifications = 0;
    uint64 coarsened_xacts = 0;
    uint64 ring_overflows = 0;
    uint64 notify_failures = 0;
};
extern Counters g_local_stats;  // this backend (direct mode)

int64 unix_us(TimestampTz ts);
std::string read_secret();  // secret file content, trailing whitespace removed

// ---- preload mode: shared ring and workers (pg_ring.cpp, pg_worker.cpp)
void ring_request_shmem();
void ring_startup();
bool ring_available();
uint64 ring_capacity();  // bytes per database
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
void register_workers();

}  // namespace pgcohere
