// SQL-callable functions (see docs/sql-api.md).
#include "ring.hpp"
#include "rules.hpp"
#include "settings.hpp"
#include "xact.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(pgcohere_check_templates);
PG_FUNCTION_INFO_V1(pgcohere_check_key_families);
PG_FUNCTION_INFO_V1(pgcohere_invalidate);
PG_FUNCTION_INFO_V1(pgcohere_coarse_pattern);
PG_FUNCTION_INFO_V1(pgcohere_queue_coarse);
PG_FUNCTION_INFO_V1(pgcohere_stats);
PG_FUNCTION_INFO_V1(pgcohere_pending);
PG_FUNCTION_INFO_V1(pgcohere_reload_rules);
}

namespace pgcohere {

namespace {

struct TextArray {
    int n;
    Datum* elems;
    bool* nulls;
};

TextArray deconstruct(ArrayType* arr) {
    TextArray out{0, nullptr, nullptr};
    deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &out.elems, &out.nulls, &out.n);
    return out;
}

std::vector<std::string> strings_of(Datum array_datum, const char* what) {
    ArrayType* arr = pg::call([&] { return DatumGetArrayTypeP(array_datum); });
    TextArray a = pg::call([&] { return deconstruct(arr); });
    std::vector<std::string> out;
    for (int i = 0; i < a.n; ++i) {
        if (a.nulls[i])
            throw pg::UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                                std::string("pgcohere: ") + what + " must not contain NULL");
        Datum d = a.elems[i];
        text* t = pg::call([&] { return DatumGetTextPP(d); });  // may detoast
        out.emplace_back(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
    }
    return out;
}

std::string string_of(text* t) { return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)); }

// invalidate() of a key that no rule's coarse pattern and no declared family covers:
// a resync (after any possible loss) would not purge it, so say so, once per family
// and transaction. Cost: one match per rule and family for each key new to the
// transaction; nothing when WARNING goes neither to the client nor to the log.
void warn_if_uncovered(bool pattern, const std::string& text) {
    if (!guc_warn_undeclared_keys || !message_level_is_interesting(WARNING)) return;
    auto families = key_families();
    if (pattern) {
        core::Glob subject = core::parse_glob(text);
        for (const auto& family : families->globs)
            if (core::glob_covers(family, subject)) return;
    } else {
        for (const auto& family : families->globs)
            if (core::glob_covers_key(family, text)) return;
    }
    std::string family = core::key_family(text, pattern);
    FamilyWarning verdict = note_uncovered_family(family);
    if (verdict == FamilyWarning::skip) return;
    std::string message, detail, hint;
    if (verdict == FamilyWarning::capped) {
        message = "pgcohere: more keys that a resync cannot purge were invalidated in this transaction";
        detail =
            "Only the first " + std::to_string(kMaxFamilyWarnings) + " key families are reported in a transaction.";
        hint =
            "Compare the keys with SELECT * FROM pgcohere.coarse_patterns(); declare their families with "
            "pgcohere.declare_keys().";
    } else {
        message = std::string("pgcohere: no rule and no declared key family covers ") + (pattern ? "pattern" : "key") +
                  " \"" + text + "\": a resync cannot purge it";
        detail = std::string("After a possibly lost invalidation, pgcohered purges only pgcohere.coarse_patterns(): ") +
                 (pattern ? "the keys it matches would stay cached until their TTL."
                          : "this key would stay cached until its TTL.") +
                 " Reported once per key family and transaction.";
        if (pattern && core::glob_covers(core::parse_glob(family), core::parse_glob("*"))) {
            hint =
                "A family that matches every key cannot be declared; if Redis holds only this cache, list * in "
                "pgcohered's [invalidation] resync_patterns.";
        } else {
            const char* family_text = family.c_str();
            char* quoted = pg::call([&] { return quote_literal_cstr(family_text); });
            hint = std::string("Declare its family: SELECT pgcohere.declare_keys(") + quoted + ");";
        }
    }
    const char* m = message.c_str();
    const char* d = detail.c_str();
    const char* h = hint.c_str();
    pg::call([&] { ereport(WARNING, (errmsg("%s", m), errdetail("%s", d), errhint("%s", h))); });
}

}  // namespace

}  // namespace pgcohere

using namespace pgcohere;

// pgcohere._check_templates(tbl regclass, templates text[]): validates, then makes
// every backend reload the table's rules when this transaction commits.
extern "C" Datum pgcohere_check_templates(PG_FUNCTION_ARGS) {
    pg::entry([&] {
        Oid relid = PG_GETARG_OID(0);
        auto templates = strings_of(PG_GETARG_DATUM(1), "key templates");
        check_templates(relid, templates);
        pg::call([&] { CacheInvalidateRelcacheByRelid(relid); });
    });
    PG_RETURN_VOID();
}

// pgcohere._check_key_families(patterns text[]): validates declare_keys()'s patterns
// (written like key templates: glob metacharacters, {name} widened to '*'), then makes
// every backend reload its key families when this transaction commits.
extern "C" Datum pgcohere_check_key_families(PG_FUNCTION_ARGS) {
    pg::entry([&] {
        auto patterns = strings_of(PG_GETARG_DATUM(0), "key families");
        if (patterns.empty())
            throw pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, "pgcohere: declare_keys() needs at least one pattern");
        const core::Glob everything = core::parse_glob("*");
        for (const auto& source : patterns) {
            try {
                // A family that matches every key would make each resync empty Redis.
                if (core::glob_covers(core::parse_glob(core::parse_template(source).coarse), everything))
                    throw pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE,
                                        "pgcohere: key family \"" + source + "\" matches every key",
                                        "Every resync would purge the whole Redis keyspace. Declare the families "
                                        "of your keys (e.g. 'user:profile:*'), or, if Redis holds only this cache, "
                                        "list * in pgcohered's [invalidation] resync_patterns.");
            } catch (const core::TemplateError& e) {
                throw pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, std::string("pgcohere: ") + e.what(),
                                    "A key family is written like a key template: glob metacharacters (* ? [ ] \\) "
                                    "and {name} placeholders, which match any value.");
            }
        }
        Oid nsp = pg::call([] { return get_namespace_oid("pgcohere", false); });
        Oid relid = pg::call([&] { return get_relname_relid("declared_keys", nsp); });
        pg::call([&] { CacheInvalidateRelcacheByRelid(relid); });
    });
    PG_RETURN_VOID();
}

// pgcohere.invalidate(VARIADIC keys text[]): transactional manual invalidation.
extern "C" Datum pgcohere_invalidate(PG_FUNCTION_ARGS) {
    int32 count = 0;
    pg::entry([&] {
        auto keys = strings_of(PG_GETARG_DATUM(0), "keys");
        for (const auto& key : keys) {
            if (key.empty()) throw pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, "pgcohere: empty key");
            bool pattern = false;
            for (char c : key) pattern = pattern || core::is_glob_meta(c);
            if (queue_entry(pattern ? core::kPattern : core::kKey, key)) warn_if_uncovered(pattern, key);
            ++count;
        }
    });
    PG_RETURN_INT32(count);
}

// pgcohere.coarse_pattern(template text): the template with placeholders widened to '*'.
extern "C" Datum pgcohere_coarse_pattern(PG_FUNCTION_ARGS) {
    text* result = nullptr;
    pg::entry([&] {
        std::string source = string_of(PG_GETARG_TEXT_PP(0));
        std::string coarse;
        try {
            coarse = core::parse_template(source).coarse;
        } catch (const core::TemplateError& e) {
            throw pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, std::string("pgcohere: ") + e.what());
        }
        result = pg::call([&] { return cstring_to_text_with_len(coarse.data(), (int)coarse.size()); });
    });
    PG_RETURN_TEXT_P(result);
}

// pgcohere._queue_coarse(templates text[], tag text): used by the DDL event triggers
// (dropped, renamed or altered tables) to publish coarse patterns at commit.
extern "C" Datum pgcohere_queue_coarse(PG_FUNCTION_ARGS) {
    pg::entry([&] {
        if (!guc_enabled) return;
        if (!PG_ARGISNULL(0)) {
            for (const auto& source : strings_of(PG_GETARG_DATUM(0), "templates")) {
                core::Template t = core::parse_template(source);
                queue_entry(t.coarse_kind, t.coarse);
            }
        }
        if (!PG_ARGISNULL(1)) queue_entry(core::kTag, string_of(PG_GETARG_TEXT_PP(1)));
    });
    PG_RETURN_VOID();
}

// pgcohere.stats(): counters of this cluster (preload mode) or of this backend (direct mode).
extern "C" Datum pgcohere_stats(PG_FUNCTION_ARGS) {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    desc = BlessTupleDesc(desc);
    bool shared = g_preloaded && ring_available();
    Counters c = shared ? ring_stats() : g_local_stats;
    Datum values[8];
    bool nulls[8] = {false, false, false, false, false, false, false, false};
    values[0] = CStringGetTextDatum(shared ? "preload" : "direct");
    values[1] = Int64GetDatum((int64)c.keys_queued);
    values[2] = Int64GetDatum((int64)c.keys_published);
    values[3] = Int64GetDatum((int64)c.notifications);
    values[4] = Int64GetDatum((int64)c.coarsened_xacts);
    values[5] = Int64GetDatum((int64)c.ring_overflows);
    values[6] = Int64GetDatum((int64)c.notify_failures);
    values[7] = Int64GetDatum(0);  // signatures are checked by the daemon; nothing fails here
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

// pgcohere.pending(): the entry lines this transaction would publish now.
extern "C" Datum pgcohere_pending(PG_FUNCTION_ARGS) {
    ReturnSetInfo* rsinfo = (ReturnSetInfo*)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    pg::entry([&] {
        for (const auto& line : pending_lines()) {
            const char* l = line.c_str();
            pg::call([&] {
                Datum value = CStringGetTextDatum(l);
                bool isnull = false;
                tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
            });
        }
    });
    return (Datum)0;
}

// pgcohere._reload_rules(tbl regclass): every backend reloads tbl's rules at commit.
extern "C" Datum pgcohere_reload_rules(PG_FUNCTION_ARGS) {
    Oid relid = PG_GETARG_OID(0);
    CacheInvalidateRelcacheByRelid(relid);
    PG_RETURN_VOID();
}
