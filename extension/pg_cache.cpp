// Query-cache policies (docs/cache.md): validation of cache_table()'s arguments, the
// by_types rule shared by the row trigger and cache_catalog(), and the entries that a
// policy change or DDL publishes.
#include <cmath>

#include "cache.hpp"
#include "settings.hpp"
#include "xact.hpp"

extern "C" {
#include "catalog/pg_inherits.h"
#include "utils/datetime.h"
}

extern "C" {
PG_FUNCTION_INFO_V1(pgcohere_check_cache_policy);
PG_FUNCTION_INFO_V1(pgcohere_queue_cache_change);
PG_FUNCTION_INFO_V1(pgcohere_by_type);
}

namespace pgcohere {

const char* cache_by_type(Oid typid, Oid collid) {
    switch (typid) {
        case INT2OID:
            return "int2";
        case INT4OID:
            return "int4";
        case INT8OID:
            return "int8";
        case UUIDOID:
            return "uuid";
        case TEXTOID:
        case VARCHAROID:
            // With a nondeterministic collation `col = 'a'` also matches 'A': a row tag
            // of the stored value would miss entries that fixed the column to another spelling.
            if (OidIsValid(collid) && !get_collation_isdeterministic(collid)) return "other";
            return typid == TEXTOID ? "text" : "varchar";
        default:
            return "other";
    }
}

namespace {

struct PolicyTarget {
    char relkind;
    char persistence;
    bool has_children;  // legacy inheritance children (partitions are fine)
    char* relname;
    char* nspname;
    int ncolumns;
    char** columns;
};

// PostgreSQL phase: only plain data.
PolicyTarget describe(Oid relid) {
    PolicyTarget out{};
    Relation rel = relation_open(relid, AccessShareLock);
    out.relkind = rel->rd_rel->relkind;
    out.persistence = rel->rd_rel->relpersistence;
    out.relname = pstrdup(NameStr(rel->rd_rel->relname));
    out.nspname = get_namespace_name(RelationGetNamespace(rel));
    TupleDesc desc = RelationGetDescr(rel);
    out.columns = (char**)palloc(sizeof(char*) * (desc->natts ? desc->natts : 1));
    for (int a = 0; a < desc->natts; ++a)
        if (!TupleDescAttr(desc, a)->attisdropped)
            out.columns[out.ncolumns++] = pstrdup(NameStr(TupleDescAttr(desc, a)->attname));
    out.has_children = out.relkind == RELKIND_RELATION && find_inheritance_children(relid, NoLock) != NIL;
    relation_close(rel, AccessShareLock);
    return out;
}

// Seconds of an interval, as EXTRACT(epoch FROM ttl) counts them.
double interval_seconds(const Interval* iv) {
    return (double)iv->time / USECS_PER_SEC + (double)iv->day * SECS_PER_DAY +
           (double)(iv->month / MONTHS_PER_YEAR) * DAYS_PER_YEAR * SECS_PER_DAY +
           (double)(iv->month % MONTHS_PER_YEAR) * DAYS_PER_MONTH * SECS_PER_DAY;
}

std::vector<std::string> texts_of(Datum array_datum, const char* what) {
    struct Elements {
        int n;
        Datum* elems;
        bool* nulls;
    };
    Elements e = pg::call([&] {
        Elements out{0, nullptr, nullptr};
        deconstruct_array(DatumGetArrayTypeP(array_datum), TEXTOID, -1, false, TYPALIGN_INT, &out.elems, &out.nulls,
                          &out.n);
        return out;
    });
    std::vector<std::string> out;
    for (int i = 0; i < e.n; ++i) {
        if (e.nulls[i])
            throw pg::UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                                std::string("pgcohere: ") + what + " must not contain NULL");
        Datum d = e.elems[i];
        text* t = pg::call([&] { return DatumGetTextPP(d); });
        out.emplace_back(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
    }
    return out;
}

void check_cache_policy(Oid relid, const Interval* ttl, Datum by, bool by_null) {
    PolicyTarget target = pg::call([&] { return describe(relid); });
    std::string name = std::string(target.nspname ? target.nspname : "?") + "." + target.relname;
    const char* hint = "Only ordinary and partitioned tables can be cached: the extension must see every write.";
    if (target.persistence == RELPERSISTENCE_TEMP)
        throw pg::UserError(ERRCODE_FEATURE_NOT_SUPPORTED,
                            "pgcohere: cannot cache temporary table \"" + std::string(target.relname) + "\"",
                            "A temporary table is private to one session; the query cache never serves it.");
    // Every object initdb created (pg_catalog, information_schema, their TOAST tables)
    // changes without DML that a trigger could see.
    if (relid < FirstNormalObjectId)
        throw pg::UserError(ERRCODE_FEATURE_NOT_SUPPORTED, "pgcohere: cannot cache system catalog \"" + name + "\"",
                            "System catalogs change without triggers; the query cache never serves them.");
    if (target.nspname && strcmp(target.nspname, "pgcohere") == 0)
        throw pg::UserError(ERRCODE_FEATURE_NOT_SUPPORTED,
                            "pgcohere: cannot cache pgcohere's own table \"" + name + "\"");
    switch (target.relkind) {
        case RELKIND_RELATION:
        case RELKIND_PARTITIONED_TABLE:
            break;
        case RELKIND_VIEW:
            throw pg::UserError(ERRCODE_WRONG_OBJECT_TYPE, "pgcohere: cannot cache view \"" + name + "\"",
                                "Cache the tables it reads: a query on the view is cached when all of them are.");
        case RELKIND_MATVIEW:
            throw pg::UserError(ERRCODE_WRONG_OBJECT_TYPE, "pgcohere: cannot cache materialized view \"" + name + "\"",
                                "REFRESH MATERIALIZED VIEW fires no trigger; only tables can be cached.");
        case RELKIND_FOREIGN_TABLE:
            throw pg::UserError(ERRCODE_WRONG_OBJECT_TYPE, "pgcohere: cannot cache foreign table \"" + name + "\"",
                                "Its data changes on another server, where no trigger tells pgcohere.");
        default:
            throw pg::UserError(ERRCODE_WRONG_OBJECT_TYPE, "pgcohere: \"" + name + "\" is not a table", hint);
    }
    if (target.has_children)
        throw pg::UserError(ERRCODE_FEATURE_NOT_SUPPORTED,
                            "pgcohere: cannot cache \"" + name + "\": it has inheritance children",
                            "A query on it also reads its children, whose writes do not fire its triggers. "
                            "Partitioned tables are supported.");
    if (ttl != nullptr && !(interval_seconds(ttl) > 0))
        throw pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, "pgcohere: ttl must be positive",
                            "Leave it NULL for pgcohered's [cache] default_ttl.");
    if (by_null) return;
    std::vector<std::string> columns = texts_of(by, "\"by\"");
    for (std::size_t i = 0; i < columns.size(); ++i) {
        bool found = false;
        for (int c = 0; c < target.ncolumns && !found; ++c) found = columns[i] == target.columns[c];
        if (!found)
            throw pg::UserError(ERRCODE_UNDEFINED_COLUMN, "pgcohere: column \"" + columns[i] + "\" of relation \"" +
                                                              name + "\" does not exist (in \"by\")");
        for (std::size_t j = 0; j < i; ++j)
            if (columns[j] == columns[i])
                throw pg::UserError(ERRCODE_DUPLICATE_COLUMN,
                                    "pgcohere: column \"" + columns[i] + "\" is listed twice in \"by\"");
    }
}

}  // namespace

}  // namespace pgcohere

using namespace pgcohere;

// pgcohere._check_cache_policy(tbl regclass, ttl interval, "by" text[]): refuses what
// cache_table() cannot cache, with a clear error. Not STRICT: ttl and "by" may be NULL.
extern "C" Datum pgcohere_check_cache_policy(PG_FUNCTION_ARGS) {
    pg::entry([&] {
        if (PG_ARGISNULL(0)) throw pg::UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "pgcohere: tbl must not be NULL");
        Oid relid = PG_GETARG_OID(0);
        const Interval* ttl = PG_ARGISNULL(1) ? nullptr : PG_GETARG_INTERVAL_P(1);
        check_cache_policy(relid, ttl, PG_ARGISNULL(2) ? (Datum)0 : PG_GETARG_DATUM(2), PG_ARGISNULL(2));
    });
    PG_RETURN_VOID();
}

// pgcohere._queue_cache_change(tbl oid, policy_changed boolean): at commit, publish
// tbl:<oid> and all:<oid> (and "c <oid>" if the policy or what the daemon's catalog
// shows changed); every backend reloads the relation's policies at commit.
extern "C" Datum pgcohere_queue_cache_change(PG_FUNCTION_ARGS) {
    Oid relid = PG_GETARG_OID(0);
    bool policy_changed = PG_GETARG_BOOL(1);
    pg::entry([&] {
        if (!guc_enabled) return;
        queue_cache_change(relid, policy_changed);
    });
    // The row triggers of relid and of its partitions reload their policies (a dropped
    // relation has no cache entries left to drop).
    if (policy_changed && get_rel_relkind(relid) != '\0') CacheInvalidateRelcacheByRelid(relid);
    PG_RETURN_VOID();
}

// pgcohere._by_type(typ oid, coll oid): cache_catalog()'s by_types, the same rule the
// row trigger uses to decide which `by` columns get row tags.
extern "C" Datum pgcohere_by_type(PG_FUNCTION_ARGS) {
    const char* name = cache_by_type(PG_GETARG_OID(0), PG_GETARG_OID(1));
    PG_RETURN_TEXT_P(cstring_to_text(name));
}
