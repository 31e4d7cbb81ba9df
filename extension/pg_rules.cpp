// Rules of a relation: loaded from pgcohere.rules, compiled, cached per backend.
#include <algorithm>
#include <memory>
#include <unordered_map>

#include "cache.hpp"
#include "rules.hpp"

namespace pgcohere {

namespace {

// Entries are shared: a caller keeps its copy for as long as it uses the rules, so an
// invalidation that arrives meanwhile (any catalog access, e.g. inside a type output
// function, may call AcceptInvalidationMessages) drops the cache's copy only.
std::unordered_map<Oid, std::shared_ptr<const RelRules>> g_cache;
uint64 g_invalidations = 0;  // bumped by every callback: a load that saw one is not cached

// Every rule's coarse pattern and every declared key family of this database. Dropped on
// any relcache invalidation: every change of pgcohere.rules or pgcohere.declared_keys
// (watch, unwatch, a dropped table, declare_keys, undeclare_keys) sends one, and
// reloading two small tables now and then is cheaper than tracking which one changed.
std::shared_ptr<const KeyFamilies> g_families;

void relcache_callback(Datum, Oid relid) {
    ++g_invalidations;
    g_families.reset();
    if (relid == InvalidOid) {
        g_cache.clear();
        return;
    }
    for (auto it = g_cache.begin(); it != g_cache.end();) {
        const auto& anc = it->second->ancestors;
        if (it->first == relid || it->second->watched == relid || std::find(anc.begin(), anc.end(), relid) != anc.end())
            it = g_cache.erase(it);
        else
            ++it;
    }
}

struct LoadedPolicy {
    Oid relid;
    int nby;
    char** by;
};
struct Loaded {
    Oid watched;
    int ntemplates;
    char** templates;
    char* nspname;
    char* relname;
    int nancestors;
    Oid* ancestors;
    int npolicies;
    LoadedPolicy* policies;
};

// PostgreSQL phase (inside SPI): the cache policy of `candidate`, if it has one.
bool load_policy(Oid candidate, LoadedPolicy* out) {
    Oid argtypes[1] = {OIDOID};
    Datum args[1] = {ObjectIdGetDatum(candidate)};
    int rc = SPI_execute_with_args("SELECT \"by\" FROM pgcohere.cache_policies WHERE tbl = $1", 1, argtypes, args,
                                   nullptr, true, 0);
    if (rc != SPI_OK_SELECT) elog(ERROR, "pgcohere: reading pgcohere.cache_policies failed");
    if (SPI_processed == 0) return false;
    out->relid = candidate;
    out->nby = 0;
    out->by = nullptr;
    bool isnull;
    Datum by = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (isnull) return true;
    Datum* elems;
    bool* nulls;
    int n;
    deconstruct_array(DatumGetArrayTypeP(by), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    out->by = (char**)SPI_palloc(sizeof(char*) * (n ? n : 1));
    for (int i = 0; i < n; ++i) {
        if (nulls[i]) continue;  // cache_table() refuses them; a hand-edited row may hold one
        char* name = TextDatumGetCString(elems[i]);
        out->by[out->nby] = (char*)SPI_palloc(strlen(name) + 1);
        strcpy(out->by[out->nby++], name);
    }
    return true;
}

// PostgreSQL phase: only plain data. The relation itself first, then its ancestors.
Loaded load_rules(Oid relid, bool is_partition) {
    Loaded out{InvalidOid, 0, nullptr, nullptr, nullptr, 0, nullptr, 0, nullptr};
    List* ancestors = is_partition ? get_partition_ancestors(relid) : NIL;
    List* candidates = list_concat(list_make1_oid(relid), ancestors);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pgcohere: SPI_connect failed");
    // Every cache policy in the chain applies: a write to a partition changes what a
    // query on any of its ancestors returns.
    out.policies = (LoadedPolicy*)SPI_palloc(sizeof(LoadedPolicy) * list_length(candidates));
    out.ancestors = (Oid*)SPI_palloc(sizeof(Oid) * (list_length(ancestors) + 1));
    ListCell* lc;
    foreach (lc, ancestors) out.ancestors[out.nancestors++] = lfirst_oid(lc);
    foreach (lc, candidates) {
        if (load_policy(lfirst_oid(lc), &out.policies[out.npolicies])) out.npolicies++;
    }
    Oid argtypes[1] = {OIDOID};
    foreach (lc, candidates) {
        Oid candidate = lfirst_oid(lc);
        Datum args[1] = {ObjectIdGetDatum(candidate)};
        int rc = SPI_execute_with_args("SELECT template FROM pgcohere.rules WHERE tbl = $1 ORDER BY template", 1,
                                       argtypes, args, nullptr, true, 0);
        if (rc != SPI_OK_SELECT) elog(ERROR, "pgcohere: reading pgcohere.rules failed");
        if (SPI_processed == 0) continue;
        out.watched = candidate;
        out.ntemplates = (int)SPI_processed;
        out.templates = (char**)SPI_palloc(sizeof(char*) * SPI_processed);
        for (uint64 i = 0; i < SPI_processed; ++i) {
            char* t = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
            out.templates[i] = (char*)SPI_palloc(strlen(t) + 1);
            strcpy(out.templates[i], t);
        }
        break;
    }
    SPI_finish();
    if (OidIsValid(out.watched)) {
        out.nspname = get_namespace_name(get_rel_namespace(out.watched));
        out.relname = get_rel_name(out.watched);
    }
    return out;
}

std::shared_ptr<RelRules> compile(Relation rel, const Loaded& loaded) {
    auto rr = std::make_shared<RelRules>();
    rr->relid = RelationGetRelid(rel);
    rr->watched = loaded.watched;
    rr->ancestors.assign(loaded.ancestors, loaded.ancestors + loaded.nancestors);
    TupleDesc desc = RelationGetDescr(rel);
    auto value_index_of = [&](AttrNumber attnum) {
        for (std::size_t k = 0; k < rr->attnums.size(); ++k)
            if (rr->attnums[k] == attnum) return (int)k;
        rr->attnums.push_back(attnum);
        rr->typoutput.push_back(TupleDescAttr(desc, attnum - 1)->atttypid);  // resolved below
        return (int)rr->attnums.size() - 1;
    };
    for (int p = 0; p < loaded.npolicies; ++p) {
        const LoadedPolicy& policy = loaded.policies[p];
        CacheTags tags;
        tags.policy = policy.relid;
        tags.tbl = core::cache_tbl_tag(policy.relid);
        tags.all = core::cache_all_tag(policy.relid);
        for (int b = 0; b < policy.nby; ++b) {
            // By name: a partition's columns can have other numbers than its parent's.
            // A column that is gone (renamed, dropped) gets no row tag; tbl:<oid> still goes.
            for (int a = 0; a < desc->natts; ++a) {
                Form_pg_attribute att = TupleDescAttr(desc, a);
                if (att->attisdropped || strcmp(policy.by[b], NameStr(att->attname)) != 0) continue;
                Oid typid = att->atttypid, collid = att->attcollation;
                const char* type = pg::call([&] { return cache_by_type(typid, collid); });
                // "other": the daemon tags its entries with tbl:<oid>, which every write publishes
                if (strcmp(type, "other") != 0)
                    tags.rows.push_back(
                        {core::cache_row_tag_prefix(policy.relid, policy.by[b]), value_index_of(att->attnum)});
                break;
            }
        }
        rr->cache.push_back(std::move(tags));
    }
    if (OidIsValid(loaded.watched))
        rr->tag = std::string("table:") + (loaded.nspname ? loaded.nspname : "?") + "." +
                  (loaded.relname ? loaded.relname : "?");
    std::vector<std::string> missing;
    for (int i = 0; i < loaded.ntemplates; ++i) {
        CompiledRule rule{core::parse_template(loaded.templates[i]), {}};
        for (const auto& column : rule.tmpl.columns) {
            AttrNumber attnum = InvalidAttrNumber;
            for (int a = 0; a < desc->natts; ++a) {
                Form_pg_attribute att = TupleDescAttr(desc, a);
                if (!att->attisdropped && column == NameStr(att->attname)) {
                    attnum = att->attnum;
                    break;
                }
            }
            if (attnum == InvalidAttrNumber) {
                rule.value_index.push_back(-1);
                if (std::find(missing.begin(), missing.end(), column) == missing.end()) missing.push_back(column);
                continue;
            }
            rule.value_index.push_back(value_index_of(attnum));
        }
        rr->rules.push_back(std::move(rule));
    }
    for (auto& type : rr->typoutput) {
        Oid base = pg::call([&] { return getBaseType(type); });
        switch (base) {
            case DATEOID:
            case TIMEOID:
            case TIMETZOID:
            case TIMESTAMPOID:
            case TIMESTAMPTZOID:
            case INTERVALOID:
            case FLOAT4OID:
            case FLOAT8OID:
            case BYTEAOID:
                rr->fixed_settings = true;
                break;
            default:
                break;
        }
        Oid typid = type;
        type = pg::call([&]() -> Oid {
            Oid out;
            bool varlena;
            getTypeOutputInfo(typid, &out, &varlena);
            return out;
        });
    }
    if (!missing.empty()) {
        std::string names;
        for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
        std::string msg = "pgcohere: rules of \"" + rr->tag.substr(6) + "\" name missing column(s) " + names +
                          "; those placeholders are widened to \"*\"";
        pg::call([&] {
            ereport(WARNING, (errmsg("%s", msg.c_str()),
                              errhint("Run pgcohere.unwatch() and pgcohere.watch() with the new column names.")));
        });
    }
    return rr;
}

struct LoadedFamilies {
    int n;
    char** sources;
};

// PostgreSQL phase: only plain data.
LoadedFamilies load_families() {
    LoadedFamilies out{0, nullptr};
    // A database whose pgcohere objects predate declared_keys still has its rules.
    Oid nsp = get_namespace_oid("pgcohere", true);
    bool declared = OidIsValid(nsp) && OidIsValid(get_relname_relid("declared_keys", nsp));
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pgcohere: SPI_connect failed");
    int rc =
        SPI_execute(declared ? "SELECT template FROM pgcohere.rules UNION SELECT pattern FROM pgcohere.declared_keys"
                             : "SELECT template FROM pgcohere.rules",
                    true, 0);
    if (rc != SPI_OK_SELECT) elog(ERROR, "pgcohere: reading pgcohere.rules and pgcohere.declared_keys failed");
    out.n = (int)SPI_processed;
    out.sources = (char**)SPI_palloc(sizeof(char*) * (SPI_processed + 1));
    for (uint64 i = 0; i < SPI_processed; ++i) {
        char* t = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
        out.sources[i] = (char*)SPI_palloc(strlen(t) + 1);
        strcpy(out.sources[i], t);
    }
    SPI_finish();
    return out;
}

}  // namespace

std::shared_ptr<const KeyFamilies> key_families() {
    if (g_families) return g_families;
    uint64 generation = g_invalidations;
    LoadedFamilies loaded = pg::call([] { return load_families(); });
    auto families = std::make_shared<KeyFamilies>();
    for (int i = 0; i < loaded.n; ++i) {
        std::string coarse;
        try {
            coarse = core::parse_template(loaded.sources[i]).coarse;
        } catch (const core::TemplateError&) {
            continue;  // not written by watch() or declare_keys(): nothing to compare with
        }
        families->globs.push_back(core::parse_glob(coarse));
    }
    if (generation == g_invalidations) g_families = families;
    return families;
}

std::shared_ptr<const RelRules> rules_for(Relation rel) {
    Oid relid = RelationGetRelid(rel);
    auto it = g_cache.find(relid);
    if (it != g_cache.end()) return it->second;
    bool is_partition = rel->rd_rel->relispartition;
    uint64 generation = g_invalidations;
    Loaded loaded = pg::call([&] { return load_rules(relid, is_partition); });
    std::shared_ptr<const RelRules> compiled = compile(rel, loaded);
    // An invalidation while loading may concern what was just read: use the result for
    // this call, but do not cache it.
    if (generation == g_invalidations) g_cache.insert_or_assign(relid, compiled);
    return compiled;
}

void register_rules_cache() { CacheRegisterRelcacheCallback(relcache_callback, (Datum)0); }

std::vector<core::Template> check_templates(Oid relid, const std::vector<std::string>& templates) {
    struct Column {
        std::string name;
    };
    std::vector<core::Template> out;
    Relation rel = pg::call([&] { return relation_open(relid, AccessShareLock); });
    char relkind = rel->rd_rel->relkind;
    std::string relname = NameStr(rel->rd_rel->relname);
    std::vector<std::string> columns;
    TupleDesc desc = RelationGetDescr(rel);
    for (int a = 0; a < desc->natts; ++a)
        if (!TupleDescAttr(desc, a)->attisdropped) columns.emplace_back(NameStr(TupleDescAttr(desc, a)->attname));
    pg::call([&] { relation_close(rel, AccessShareLock); });
    if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
        throw pg::UserError(ERRCODE_WRONG_OBJECT_TYPE, "pgcohere: \"" + relname + "\" is not a table",
                            "Only ordinary and partitioned tables can be watched.");
    if (templates.empty())
        throw pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, "pgcohere: watch() needs at least one key template");
    for (const auto& source : templates) {
        core::Template t;
        try {
            t = core::parse_template(source);
        } catch (const core::TemplateError& e) {
            throw pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, std::string("pgcohere: ") + e.what(),
                                "Placeholders are written {column_name}.");
        }
        for (const auto& c : t.columns) {
            bool found = false;
            for (const auto& name : columns) found = found || name == c;
            if (!found)
                throw pg::UserError(ERRCODE_UNDEFINED_COLUMN, "pgcohere: column \"" + c + "\" of relation \"" +
                                                                  relname + "\" does not exist (in key template \"" +
                                                                  source + "\")");
        }
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace pgcohere
