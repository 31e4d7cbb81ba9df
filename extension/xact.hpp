// The transaction's entries: queued by triggers and invalidate(), published after commit
// (directly, or through the ring when preloaded); defined in pg_xact.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core.hpp"
#include "pg.hpp"
#include "rules.hpp"

namespace pgcohere {

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

}  // namespace pgcohere
