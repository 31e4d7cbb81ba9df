// Transaction state: the entries a transaction collects, subtransaction handling, and
// publication at commit (direct NOTIFY at pre-commit, or the shared ring after commit).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unordered_set>

#include "ring.hpp"
#include "rules.hpp"
#include "settings.hpp"
#include "xact.hpp"

extern "C" {
#include "catalog/pg_database.h"
#include "storage/lmgr.h"
}

namespace pgcohere {

Counters g_local_stats;

namespace {

struct XactState {
    core::KeySet entries;
    bool coarsened = false;
    uint64 nkeys = 0;
    // Preload mode: the transaction's lines, serialized at pre-commit, pushed at commit.
    std::string record;
    int slot = -1;
    bool direct_published = false;
    bool lost = false;  // entries could not be kept: publish a resync
    uint64 notifications = 0;
    // Read-your-writes (pgcohere.published): direct mode's epoch and last seq; or, for a
    // direct publish in a preloaded cluster, the slot whose ring gets a marker at commit.
    uint64 pub_epoch = 0;
    uint64 pub_pos = 0;
    int marker_slot = -1;
    // invalidate()'s warnings about keys no resync covers: the families reported so far
    std::unordered_set<std::string> warned_families;
    bool warnings_capped = false;
};
XactState g_xact;

void reset() noexcept {
    g_xact.entries.clear();
    g_xact.coarsened = false;
    g_xact.nkeys = 0;
    g_xact.record.clear();
    g_xact.record.shrink_to_fit();
    g_xact.slot = -1;
    g_xact.direct_published = false;
    g_xact.lost = false;
    g_xact.notifications = 0;
    g_xact.pub_epoch = 0;
    g_xact.pub_pos = 0;
    g_xact.marker_slot = -1;
    g_xact.warned_families.clear();
    g_xact.warnings_capped = false;
}

int level() { return GetCurrentTransactionNestLevel(); }

std::vector<std::string> lines_of_xact() {
    std::vector<std::string> lines;
    lines.reserve(g_xact.entries.size());
    g_xact.entries.for_each([&](char kind, std::string_view text) { lines.push_back(core::entry_line(kind, text)); });
    std::sort(lines.begin(), lines.end());  // stable output for readers and tests
    return lines;
}

Oid sequence_relid() {
    Oid nsp = get_namespace_oid("pgcohere", true);
    return OidIsValid(nsp) ? get_relname_relid("seq", nsp) : InvalidOid;
}

void notify_payloads(const std::vector<std::string>& payloads) {
    const char* channel = guc_channel;
    for (const auto& p : payloads) {
        const char* text = p.c_str();
        pg::call([&] { Async_Notify(channel, text); });
    }
    g_local_stats.notifications += payloads.size();
    g_xact.notifications += payloads.size();
    g_xact.direct_published = true;
}

// Direct mode: one or more NOTIFYs from this backend, inside the committing transaction.
void publish_direct() {
    char* dbname = pg::call([] { return get_database_name(MyDatabaseId); });
    std::string secret = read_secret();
    core::PayloadParams params;
    params.dbname = dbname;
    params.secret = secret;
    params.epoch = guc_deterministic ? 0 : (uint64)unix_us(PgStartTime);
    params.commit_us = guc_deterministic ? 0 : unix_us(GetCurrentTimestamp());
    // A preloaded cluster has one stream per database: share the worker's epoch and seqs.
    int slot = g_preloaded && ring_available() ? pg::call([] { return ring_slot_for(MyDatabaseId); }) : -1;
    uint64 slot_epoch = 0;
    if (slot >= 0 && !guc_deterministic && ring_stream(slot, &slot_epoch)) {
        params.epoch = slot_epoch;
        auto lines = lines_of_xact();
        std::vector<std::string_view> views(lines.begin(), lines.end());
        auto payloads = core::encode_payloads(views, params, [&] { return ring_next_seq(slot); });
        notify_payloads(payloads);
        // These payloads cover no ring position (pos is the ring's byte offset in this
        // epoch): the commit pushes an empty marker, and the worker's batch that carries it
        // (sent after these payloads, with higher seqs) gives the commit its position.
        g_xact.marker_slot = slot;
        return;
    }
    Oid seq = pg::call([] { return sequence_relid(); });
    // Take PostgreSQL's NOTIFY lock (PreCommit_Notify takes the same one a moment later
    // and holds it to the end of the commit) before the seqs: then seqs enter the NOTIFY
    // queue in seq order, and a seq the daemon has not received when a higher one arrives
    // is lost for good (an aborted commit), never a commit still on its way. That is what
    // lets a resync advance the read-your-writes watermark over a gap (docs/cache.md).
    // The sequence's lock first, the order nextval then PreCommit_Notify already had (a
    // concurrent DROP EXTENSION holds the sequence and then wants the NOTIFY lock).
    pg::call([&] {
        if (OidIsValid(seq)) LockRelationOid(seq, RowExclusiveLock);
        LockSharedObject(DatabaseRelationId, InvalidOid, 0, AccessExclusiveLock);
    });
    uint64 local_seq = 0;
    if (!OidIsValid(seq) && !guc_deterministic) {
        // The extension was dropped in this transaction: no shared sequence any more.
        // Same epoch as always (epochs of a database only grow: a higher one here would
        // make the daemon take every later payload of the real epoch for a replay), and
        // seqs from the commit time in microseconds: the sequence counted up from its
        // install time, so these are above every seq it handed out (a forward gap: the
        // daemon resyncs, which is what a dropped extension needs), and a re-created
        // extension's sequence starts later still.
        local_seq = (uint64)params.commit_us - 1;
    }
    auto lines = lines_of_xact();
    std::vector<std::string_view> views(lines.begin(), lines.end());
    params.pos = core::PayloadParams::Pos::seq;
    uint64 last_seq = 0;
    auto payloads = core::encode_payloads(views, params, [&] {
        last_seq = OidIsValid(seq) ? (uint64)pg::call([&] { return nextval_internal(seq, false); }) : ++local_seq;
        return last_seq;
    });
    notify_payloads(payloads);
    g_xact.pub_epoch = params.epoch;
    g_xact.pub_pos = last_seq;
}

// Preload mode, pre-commit: serialize now (may fail, the transaction then aborts);
// the push at commit copies bytes only.
constexpr std::size_t kRecordOverhead = 16;

bool prepare_ring() {
    if (!ring_available()) return false;
    int slot = pg::call([] { return ring_slot_for(MyDatabaseId); });
    if (slot < 0) return false;  // no free slot: fall back to a direct NOTIFY
    std::string record;
    for (const auto& line : lines_of_xact()) {
        record += line;
        record.push_back('\n');
    }
    if (record.size() + kRecordOverhead > ring_capacity() / 2) {
        // Too big for the ring: one direct NOTIFY for this transaction (it takes the
        // global NOTIFY lock once) beats a resync that would purge every coarse pattern.
        return false;
    }
    g_xact.record = std::move(record);
    g_xact.slot = slot;
    return true;
}

void pre_commit() {
    if (g_xact.lost) {
        g_xact.entries.clear();
        g_xact.entries.add(1, core::kResync, "backend-out-of-memory");
    }
    if (g_xact.entries.empty()) return;
    if (g_xact.coarsened) g_local_stats.coarsened_xacts++;
    g_local_stats.keys_queued += g_xact.entries.size();
    if (g_preloaded && guc_publish_mode == PUBLISH_AUTO && prepare_ring()) return;
    publish_direct();
}

// Sets pgcohere.published after the commit record: it must not raise an error. With
// PGC_S_OVERRIDE set_config_option() keeps no transaction stack entry (it sets the reset
// value too, so nothing is allocated in TopTransactionContext); its only allocation is
// guc_strdup()'s malloc, which reports at `elevel` (WARNING: no longjmp). The guard below
// is for anything we overlooked: the setting is then not reported (logged), the commit stays.
void set_published(uint64 epoch, uint64 pos) noexcept {
    static char value[48];  // plain static data: nothing to allocate or destroy here
    snprintf(value, sizeof value, UINT64_FORMAT " " UINT64_FORMAT, epoch, pos);
    MemoryContext old = CurrentMemoryContext;
    // errfinish() zeroes these before a longjmp; the commit holds interrupts and expects them back.
    uint32 holdoff = InterruptHoldoffCount, cancel_holdoff = QueryCancelHoldoffCount, crit = CritSectionCount;
    bool failed = false;
    PG_TRY();
    {
        (void)set_config_option("pgcohere.published", value, PGC_INTERNAL, PGC_S_OVERRIDE, GUC_ACTION_SET, true,
                                WARNING, false);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(old);
        FlushErrorState();
        InterruptHoldoffCount = holdoff;
        QueryCancelHoldoffCount = cancel_holdoff;
        CritSectionCount = crit;
        failed = true;
    }
    PG_END_TRY();
    if (failed) elog(LOG, "pgcohere: could not set pgcohere.published to %s", value);
}

// Whether the transaction publishes anything the query cache's entries depend on (its tags,
// a policy change, a resync): only such a commit moves pgcohere.published, so a client's
// read-your-writes wait is never for a purge of application keys the cache does not hold,
// and the daemon stores its applied watermark only when a cache-relevant commit is purged.
bool publishes_for_cache() noexcept {
    bool found = false;
    g_xact.entries.for_each([&](char kind, std::string_view text) {
        if (core::affects_query_cache(kind, text)) found = true;
    });
    return found;
}

void commit() noexcept {
    uint64 epoch = 0, pos = 0;
    bool for_cache = publishes_for_cache();
    if (g_xact.slot >= 0) {
        // Already committed: copying into the ring must never raise an error.
        ring_push(g_xact.slot, unix_us(GetCurrentTimestamp()), g_xact.record.data(), g_xact.record.size(),
                  g_xact.entries.size(), g_xact.coarsened, &epoch, &pos);
    } else if (g_xact.direct_published) {
        g_local_stats.keys_published += g_xact.entries.size();
        // a direct publish in a preloaded cluster also counts in the cluster's stats()
        ring_count_direct(g_xact.entries.size(), g_xact.notifications, g_xact.coarsened);
        if (g_xact.marker_slot >= 0)
            ring_push(g_xact.marker_slot, unix_us(GetCurrentTimestamp()), "", 0, 0, false, &epoch, &pos);
        else {
            epoch = g_xact.pub_epoch;
            pos = g_xact.pub_pos;
        }
    }
    reset();
    // pos 0: nothing published, or no ring slot could take the record (then nothing can
    // promise when it is applied; the setting keeps its value).
    if (pos > 0 && for_cache) set_published(epoch, pos);
}

extern "C" void xact_callback(XactEvent event, void*) {
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
            pg::entry([] { pre_commit(); });
            break;
        case XACT_EVENT_COMMIT:
            commit();
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
            reset();
            break;
        case XACT_EVENT_PRE_PREPARE:
            if (!g_xact.entries.empty())
                ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                                errmsg("pgcohere: cannot PREPARE a transaction that has pending cache invalidations"),
                                errdetail("%zu invalidation entries would be lost: they are published at COMMIT.",
                                          g_xact.entries.size()),
                                errhint("Commit the changes to watched tables outside of two-phase commit.")));
            break;
        case XACT_EVENT_PREPARE:
            reset();
            break;
        default:
            break;
    }
}

extern "C" void subxact_callback(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
    // commit_sub merges sets and may allocate: guard it; abort only frees.
    switch (event) {
        case SUBXACT_EVENT_COMMIT_SUB: {
            // Raising an error while a subtransaction commits is not an option: if the
            // merge cannot allocate, the transaction publishes a resync instead.
            try {
                g_xact.entries.commit_sub(level());
            } catch (...) {
                g_xact.lost = true;
            }
            break;
        }
        case SUBXACT_EVENT_ABORT_SUB:
            g_xact.entries.abort_sub(level());
            break;
        default:
            break;
    }
}

}  // namespace

int64 unix_us(TimestampTz ts) {
    return (int64)ts + (int64)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC;
}

std::string read_secret() {
    const char* path = guc_secret_file;
    if (path == nullptr || path[0] == '\0') return {};
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw pg::UserError(ERRCODE_CONFIG_FILE_ERROR,
                            std::string("pgcohere: could not read pgcohere.secret_file \"") + path + "\"",
                            "The file must be readable by the PostgreSQL server user.");
    std::stringstream buf;
    buf << in.rdbuf();
    return core::trim_secret(buf.str());
}

void register_xact_callbacks() {
    RegisterXactCallback(xact_callback, nullptr);
    RegisterSubXactCallback(subxact_callback, nullptr);
}

std::vector<std::string> pending_lines() { return lines_of_xact(); }

bool queue_entry(char kind, std::string_view text) {
    if (!g_xact.entries.add(level(), kind, text)) return false;
    if (kind == core::kKey) g_xact.nkeys++;
    return true;
}

FamilyWarning note_uncovered_family(const std::string& family) {
    if (g_xact.warnings_capped || g_xact.warned_families.count(family)) return FamilyWarning::skip;
    if (g_xact.warned_families.size() >= kMaxFamilyWarnings) {
        g_xact.warnings_capped = true;
        return FamilyWarning::capped;
    }
    g_xact.warned_families.insert(family);
    return FamilyWarning::warn;
}

bool over_key_limit() {
    if (g_xact.entries.size() < (std::size_t)guc_max_keys_per_xact) return false;
    g_xact.coarsened = true;
    return true;
}

void queue_rendered(const CompiledRule& rule, const core::Rendered& r) {
    if (over_key_limit()) {
        // Past the limit: the rule's coarse pattern covers every key it could render,
        // and the set stops growing (bounded memory).
        queue_entry(rule.tmpl.coarse_kind, rule.tmpl.coarse);
        return;
    }
    queue_entry(r.kind, r.text);
}

void queue_coarse(const RelRules& rr) {
    for (const auto& rule : rr.rules) queue_entry(rule.tmpl.coarse_kind, rule.tmpl.coarse);
    if (!rr.tag.empty()) queue_entry(core::kTag, rr.tag);
    for (const auto& policy : rr.cache) {
        queue_entry(core::kTag, policy.tbl);
        queue_entry(core::kTag, policy.all);
    }
}

void queue_cache_change(Oid relid, bool policy_changed) {
    if (policy_changed) queue_entry(core::kCachePolicy, core::cache_policy_text(relid));
    queue_entry(core::kTag, core::cache_tbl_tag(relid));
    queue_entry(core::kTag, core::cache_all_tag(relid));
}

}  // namespace pgcohere
