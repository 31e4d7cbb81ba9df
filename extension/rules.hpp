// The rules and cache tags of a relation, compiled and cached per backend, and the key
// families a resync covers; defined in pg_rules.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core.hpp"
#include "pg.hpp"

namespace pgcohere {

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
// Parses templates and checks their columns against relid; throws UserError.
std::vector<core::Template> check_templates(Oid relid, const std::vector<std::string>& templates);

}  // namespace pgcohere
