// The row trigger (INSERT/UPDATE/DELETE, also via COPY, MERGE, ON CONFLICT and
// partitions) and the statement trigger for TRUNCATE.
#include "rules.hpp"
#include "settings.hpp"
#include "xact.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(pgcohere_row_trigger);
PG_FUNCTION_INFO_V1(pgcohere_truncate_trigger);
}

namespace pgcohere {

namespace {

// PostgreSQL phase: the text of every column the rules and row tags read (nullptr for NULL).
// Allocated in the trigger's per-tuple memory context, which the executor resets.
const char** fetch_values(TupleTableSlot* slot, const RelRules* rr) {
    std::size_t n = rr->attnums.size();
    const char** values = (const char**)palloc0(sizeof(char*) * (n ? n : 1));
    int guc_level = -1;
    if (rr->fixed_settings) {
        // Like a function's SET clause: restored by AtEOXact_GUC below, or by the
        // (sub)transaction abort if an output function raises an error.
        guc_level = NewGUCNestLevel();
        (void)set_config_option("DateStyle", "ISO, YMD", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
        (void)set_config_option("TimeZone", "UTC", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
        (void)set_config_option("IntervalStyle", "postgres", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                                false);
        (void)set_config_option("extra_float_digits", "1", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                                false);
        (void)set_config_option("bytea_output", "hex", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    }
    for (std::size_t i = 0; i < n; ++i) {
        bool isnull;
        Datum d = slot_getattr(slot, rr->attnums[i], &isnull);
        values[i] = isnull ? nullptr : OidOutputFunctionCall(rr->typoutput[i], d);
    }
    if (guc_level >= 0) AtEOXact_GUC(true, guc_level);
    return values;
}

void queue_row(TupleTableSlot* slot, const RelRules& rr) {
    // A cache-enabled table without rules and without row tags needs no value.
    if (rr.rules.empty() && rr.attnums.empty()) return;
    const RelRules* prr = &rr;
    const char** values = pg::call([&] { return fetch_values(slot, prr); });
    std::vector<const char*> args;
    for (const auto& rule : rr.rules) {
        args.clear();
        for (int index : rule.value_index) args.push_back(index < 0 ? nullptr : values[index]);
        queue_rendered(rule, core::render(rule.tmpl, args));
    }
    std::string tag;
    for (const auto& policy : rr.cache) {
        for (const auto& row : policy.rows) {
            const char* value = values[row.value_index];
            if (value == nullptr) continue;  // `col = x` never matches NULL
            if (over_key_limit()) {
                // Past max_keys_per_xact: all:<oid> purges every row-tagged entry (and
                // the caller adds tbl:<oid>), so the set stops growing.
                queue_entry(core::kTag, policy.all);
                continue;
            }
            tag.assign(row.prefix);
            tag.append(value);
            queue_entry(core::kTag, tag);
        }
    }
}

void row_trigger(FunctionCallInfo fcinfo) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        throw pg::UserError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                            "pgcohere.row_trigger() must be called as a trigger");
    auto* td = (TriggerData*)fcinfo->context;
    if (!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_AFTER(td->tg_event))
        throw pg::UserError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                            "pgcohere.row_trigger() must be an AFTER ... FOR EACH ROW trigger");
    if (!guc_enabled) return;
    // Kept alive for the whole call: fetch_values runs type output functions, which can
    // process invalidations that drop the cache entry.
    std::shared_ptr<const RelRules> held = rules_for(td->tg_relation);
    const RelRules& rr = *held;
    if (rr.rules.empty() && rr.cache.empty()) return;
    if (over_key_limit()) {
        // Past max_keys_per_xact: the coarse patterns and tbl:/all: tags cover this row;
        // skip rendering.
        queue_coarse(rr);
        return;
    }
    if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
        queue_row(td->tg_trigslot, rr);  // OLD
        queue_row(td->tg_newslot, rr);   // NEW; equal keys collapse in the set
    } else {
        queue_row(td->tg_trigslot, rr);
    }
    if (!rr.tag.empty()) queue_entry(core::kTag, rr.tag);
    for (const auto& policy : rr.cache) queue_entry(core::kTag, policy.tbl);
}

void truncate_trigger(FunctionCallInfo fcinfo) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        throw pg::UserError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                            "pgcohere.truncate_trigger() must be called as a trigger");
    auto* td = (TriggerData*)fcinfo->context;
    if (!guc_enabled) return;
    std::shared_ptr<const RelRules> held = rules_for(td->tg_relation);
    queue_coarse(*held);
}

}  // namespace

}  // namespace pgcohere

extern "C" Datum pgcohere_row_trigger(PG_FUNCTION_ARGS) {
    pgcohere::pg::entry([&] { pgcohere::row_trigger(fcinfo); });
    return PointerGetDatum(nullptr);
}

extern "C" Datum pgcohere_truncate_trigger(PG_FUNCTION_ARGS) {
    pgcohere::pg::entry([&] { pgcohere::truncate_trigger(fcinfo); });
    return PointerGetDatum(nullptr);
}
