// analyze(): what the parse tree allows, the relations it lists, the row equalities and
// the hints. Every refusal is checked with the reason's key words so that a test cannot
// pass for the wrong reason.
#include <gtest/gtest.h>

#include "cache/allow_list.h"
#include "cache/query_analysis.h"

using namespace pgcohere::cache;

namespace {

void expect_cacheable(std::string_view sql) {
  Analysis a = analyze(sql);
  EXPECT_TRUE(a.cacheable) << sql << ": " << a.reason;
}

void expect_refused(std::string_view sql, std::string_view reason_part) {
  Analysis a = analyze(sql);
  EXPECT_FALSE(a.cacheable) << sql;
  EXPECT_NE(a.reason.find(reason_part), std::string::npos) << sql << ": reason was '" << a.reason << "'";
}

}  // namespace

TEST(CacheAnalysis, AllowListsAreSortedForTheirBinarySearch) { EXPECT_TRUE(allow_lists_are_sorted()); }

TEST(CacheAnalysis, PlainSelectsUnionsSubqueriesAndCtesAreCacheable) {
  expect_cacheable("SELECT * FROM messages");
  expect_cacheable("SELECT id, body FROM messages WHERE conversation_id = 42 ORDER BY id DESC LIMIT 20 OFFSET 40");
  expect_cacheable("SELECT count(*) FROM messages WHERE conversation_id = $1");
  expect_cacheable("SELECT a FROM t UNION ALL SELECT b FROM u INTERSECT SELECT c FROM v EXCEPT SELECT d FROM w");
  expect_cacheable("SELECT * FROM t WHERE id IN (SELECT tid FROM u WHERE x > 3) AND EXISTS (SELECT 1 FROM v)");
  expect_cacheable("WITH recent AS (SELECT * FROM messages WHERE id > 10) SELECT * FROM recent JOIN users ON true");
  expect_cacheable(
      "WITH RECURSIVE r(n) AS (SELECT 1 FROM t UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r");
  expect_cacheable("VALUES (1), (2) UNION SELECT id FROM t");
  expect_cacheable("TABLE t");
  expect_cacheable(
      "SELECT lower(name), upper(name), length(name), abs(x), round(x, 2), coalesce(a, b), nullif(a, b), "
      "greatest(a, b), least(a, b), substr(s, 1, 2), trim(s), sum(x), min(x), max(x), avg(x) FROM t GROUP BY 1, "
      "2, 3, 4, 5, 6, 7, 8, 9, 10, 11");
  expect_cacheable("SELECT row_number() OVER (PARTITION BY a ORDER BY b), count(*) OVER () FROM t");
  expect_cacheable(
      "SELECT * FROM t WHERE a <> 1 AND b != 2 AND c < 3 AND d >= 4 AND e || 'x' LIKE 'y%' AND f ILIKE 'z' "
      "AND g NOT LIKE 'q' AND h BETWEEN 1 AND 2 AND i IS NOT NULL AND j IS DISTINCT FROM k AND l = ANY($1)");
  expect_cacheable(
      "SELECT a::int8, b::text, c::numeric(10, 2), CAST(d AS timestamptz), e::varchar(3), '1 day'::interval, "
      "f::uuid, g::int4[] FROM t");
  expect_cacheable("SELECT current_user, session_user, current_role, user FROM t");
  expect_cacheable("SELECT CASE WHEN a > 0 THEN 'p' ELSE 'n' END, ARRAY[a, b], ROW(a, b), (ARRAY[1, 2])[1] FROM t");
  expect_cacheable("SELECT pg_catalog.lower(name) FROM t WHERE a OPERATOR(pg_catalog.=) 1");
  // The SQL-syntax forms the docs list, which the parser turns into pg_catalog calls.
  expect_cacheable(
      "SELECT trim(leading 'x' FROM a), trim(trailing FROM a), substring(a FROM 2 FOR 3), "
      "substring(a SIMILAR 'x' ESCAPE '#'), position('b' IN a) FROM t");
  expect_cacheable(
      "SELECT * FROM t WHERE a LIKE 'x!%' ESCAPE '!' AND b NOT ILIKE 'y' AND c IS TRUE AND d IS NOT FALSE "
      "AND e BETWEEN SYMMETRIC 1 AND 2 AND f NOT IN (1, 2) AND g = ALL ('{1}')");
  expect_cacheable(
      "SELECT int4 '1', timestamp with time zone '2024-01-01 00:00+00', a::double precision, b::char(3), "
      "c::smallint, d::boolean, e::decimal(4, 1), f::real FROM t");
  expect_cacheable(
      "SELECT count(DISTINCT a), sum(b) FILTER (WHERE c > 0), string_agg(d, ',' ORDER BY d), "
      "array_agg(e) FROM t GROUP BY ROLLUP (f) HAVING count(*) > 1");
}

TEST(CacheAnalysis, WritesLocksAndMultipleStatementsAreNotCacheable) {
  expect_refused("INSERT INTO t VALUES (1)", "not a SELECT");
  expect_refused("UPDATE t SET a = 1", "not a SELECT");
  expect_refused("DELETE FROM t", "not a SELECT");
  expect_refused("SELECT * FROM t FOR UPDATE", "locks rows");
  expect_refused("SELECT * FROM t FOR NO KEY UPDATE", "locks rows");
  expect_refused("SELECT * FROM t FOR SHARE", "locks rows");
  expect_refused("SELECT * FROM t FOR KEY SHARE", "locks rows");
  expect_refused("SELECT * FROM (SELECT * FROM t FOR UPDATE) s", "locks rows");
  expect_refused("SELECT * INTO newtable FROM t", "SELECT INTO");
  expect_refused("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "data-modifying WITH");
  expect_refused("WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM u", "data-modifying WITH");
  expect_refused("SELECT * FROM t; SELECT * FROM u", "2 statements");
  expect_refused("SELECT * FROM t; DELETE FROM t", "2 statements");
  expect_refused("", "empty query");
  expect_refused("   ;  ", "empty query");
  expect_refused("SELEC * FROM t", "syntax error");
  expect_refused("EXPLAIN SELECT * FROM t", "not a SELECT");
  expect_refused("BEGIN", "not a SELECT");
  expect_refused("SET search_path = x", "not a SELECT");
  expect_refused(std::string_view("SELECT * FROM t\0; DELETE FROM t", 32), "NUL byte");
}

TEST(CacheAnalysis, VolatileOrUnlistedFunctionsAreNotCacheable) {
  expect_refused("SELECT now() FROM t", "now() is not on the allow-list");
  expect_refused("SELECT * FROM t WHERE created > now() - interval '1 hour'", "now()");
  expect_refused("SELECT nextval('s') FROM t", "nextval()");
  expect_refused("SELECT random() FROM t", "random()");
  expect_refused("SELECT concat(a, b) FROM t", "concat()");  // STABLE
  expect_refused("SELECT to_char(a, '999') FROM t", "to_char()");
  expect_refused("SELECT length(b, 'UTF8') FROM t", "length() with 2 arguments");
  expect_refused("SELECT public.lower(a) FROM t", "public.lower()");
  expect_refused("SELECT my_func(a) FROM t", "my_func()");
  expect_refused("SELECT * FROM generate_series(1, 3) g, t", "function in FROM");
  expect_refused("SELECT * FROM t, unnest(t.arr)", "function in FROM");
  expect_refused("SELECT current_timestamp FROM t", "read the clock");
  expect_refused("SELECT current_date FROM t", "read the clock");
  expect_refused("SELECT localtimestamp FROM t", "read the clock");
  expect_refused("SELECT current_time(3) FROM t", "read the clock");
  expect_refused("SELECT current_schema FROM t", "current_schema");
  expect_refused("SELECT lower(x => a) FROM t", "named function arguments");
  expect_refused("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a) FROM t", "percentile_cont()");
  expect_refused("SELECT count(*) WITHIN GROUP (ORDER BY a) FROM t", "WITHIN GROUP");
  expect_refused("SELECT lower(a) OVER () FROM t", "not a window function");
  expect_refused("SELECT extract(epoch FROM a) FROM t", "extract()");
  expect_refused("SELECT a AT TIME ZONE 'UTC' FROM t", "timezone()");
  expect_refused("SELECT * FROM t WHERE a = (SELECT max(random()) FROM u)", "random()");
  expect_refused("WITH x AS (SELECT clock_timestamp() FROM u) SELECT * FROM x, t", "clock_timestamp()");
}

TEST(CacheAnalysis, UnlistedOperatorsCastsAndConstructsAreNotCacheable) {
  expect_refused("SELECT * FROM t WHERE a ~ 'x'", "operator ~ is not on the allow-list");
  expect_refused("SELECT * FROM t WHERE a SIMILAR TO 'x'", "SIMILAR TO");
  expect_refused("SELECT * FROM t WHERE a @> b", "operator @>");
  expect_refused("SELECT * FROM t WHERE a OPERATOR(public.=) 1", "operator =");
  expect_refused("SELECT * FROM t WHERE a = ANY (SELECT b FROM u) AND c ~ ALL (SELECT d FROM u)", "operator ~");
  expect_refused("SELECT * FROM t ORDER BY a USING ~<~", "operator ~<~");
  expect_refused("SELECT a::regclass FROM t", "cast to regclass");
  expect_refused("SELECT a::mytype FROM t", "cast to mytype");
  expect_refused("SELECT a::public.int4 FROM t", "cast to int4");
  expect_refused("SELECT * FROM t TABLESAMPLE SYSTEM (10)", "TABLESAMPLE");
  expect_refused("SELECT xmlelement(name a) FROM t", "unsupported construct");
  expect_refused("SELECT * FROM otherdb.public.t", "database-qualified");
  expect_refused(
      "WITH RECURSIVE r AS (SELECT 1 AS n FROM t UNION ALL SELECT n + 1 FROM r) SEARCH DEPTH FIRST BY n SET o "
      "SELECT * FROM r",
      "SEARCH/CYCLE");
}

TEST(CacheAnalysis, LiteralsThatReadTheClockAreNotCacheable) {
  expect_refused("SELECT * FROM t WHERE created > 'now'::timestamptz", "reads the clock");
  expect_refused("SELECT * FROM t WHERE created > 'NOW'", "reads the clock");
  expect_refused("SELECT * FROM t WHERE day = date 'today'", "reads the clock");
  expect_refused("SELECT * FROM t WHERE at < 'tomorrow 10:00'", "reads the clock");
  expect_refused("SELECT * FROM t WHERE at > 'yesterday'", "reads the clock");
  expect_cacheable("SELECT * FROM t WHERE at > 'epoch' AND at < 'infinity' AND body <> 'nowhere'");
  EXPECT_TRUE(has_clock_word(" Today "));
  EXPECT_TRUE(has_clock_word("2024-01-01 now"));
  EXPECT_FALSE(has_clock_word("snowy"));
  EXPECT_FALSE(has_clock_word(""));
}

TEST(CacheAnalysis, AStatementWithoutATableIsNotCacheable) {
  expect_refused("SELECT 1", "reads no table");
  expect_refused("VALUES (1, 'a')", "reads no table");
  expect_refused("WITH x AS (SELECT 1) SELECT * FROM x", "reads no table");
}

TEST(CacheAnalysis, EveryRelationIsListedWithSchemaAliasAndTopLevelFlag) {
  Analysis a = analyze(
      "SELECT * FROM app.messages m JOIN users ON users.id = m.author_id, (SELECT * FROM sub) s "
      "WHERE EXISTS (SELECT 1 FROM other o WHERE o.id = m.id)");
  ASSERT_TRUE(a.cacheable) << a.reason;
  ASSERT_EQ(a.relations.size(), 4u);
  EXPECT_EQ(a.relations[0], (RelationRef{"app", "messages", "m", true}));
  EXPECT_EQ(a.relations[1], (RelationRef{"", "users", "", true}));
  EXPECT_EQ(a.relations[2], (RelationRef{"", "sub", "", false}));
  EXPECT_EQ(a.relations[3], (RelationRef{"", "other", "o", false}));
}

TEST(CacheAnalysis, ATableReadTwiceIsListedTwice) {
  Analysis a = analyze("SELECT * FROM t a JOIN t b ON a.id = b.parent");
  ASSERT_TRUE(a.cacheable) << a.reason;
  ASSERT_EQ(a.relations.size(), 2u);
  EXPECT_EQ(a.relations[0].alias, "a");
  EXPECT_EQ(a.relations[1].alias, "b");
}

TEST(CacheAnalysis, CteNamesAreNotRelationsButOnlyWhereTheyAreVisible) {
  // In a non-recursive WITH, a query sees only the WITH queries before it: `b` inside `a`
  // is the table b.
  Analysis a = analyze("WITH a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM b, a");
  ASSERT_TRUE(a.cacheable) << a.reason;
  ASSERT_EQ(a.relations.size(), 1u);
  EXPECT_EQ(a.relations[0].name, "b");
  // A schema-qualified name is never a WITH query.
  a = analyze("WITH t AS (SELECT 1) SELECT * FROM t, public.t");
  ASSERT_EQ(a.relations.size(), 1u);
  EXPECT_EQ(a.relations[0].schema, "public");
  // The WITH of a subquery does not reach outside it.
  a = analyze("SELECT * FROM (WITH x AS (SELECT * FROM y) SELECT * FROM x) s, x");
  ASSERT_EQ(a.relations.size(), 2u);
  EXPECT_EQ(a.relations[0].name, "y");
  EXPECT_EQ(a.relations[1].name, "x");
  // A recursive WITH sees all of its names, also later ones.
  a = analyze("WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT * FROM t) SELECT * FROM a");
  ASSERT_EQ(a.relations.size(), 1u);
  EXPECT_EQ(a.relations[0].name, "t");
}

TEST(CacheAnalysis, AnAliasedJoinHidesItsTablesFromTheTopLevel) {
  Analysis a = analyze("SELECT * FROM (a JOIN b ON true) AS j, c");
  ASSERT_EQ(a.relations.size(), 3u);
  EXPECT_FALSE(a.relations[0].top_level_from);
  EXPECT_FALSE(a.relations[1].top_level_from);
  EXPECT_TRUE(a.relations[2].top_level_from);
}

TEST(CacheAnalysis, NothingIsTopLevelInASetOperation) {
  Analysis a = analyze("SELECT * FROM t WHERE id = 1 UNION SELECT * FROM u WHERE id = 2");
  ASSERT_TRUE(a.cacheable);
  EXPECT_FALSE(a.relations[0].top_level_from);
  EXPECT_FALSE(a.relations[1].top_level_from);
  EXPECT_TRUE(a.equalities.empty());
}

TEST(CacheAnalysis, EqualitiesOfTheTopLevelAndAreReportedWithTheirValues) {
  Analysis a = analyze("SELECT * FROM messages WHERE conversation_id = 42 AND 'x' = author AND kind = $2 AND (n = -7)");
  ASSERT_TRUE(a.cacheable) << a.reason;
  ASSERT_EQ(a.equalities.size(), 4u);
  EXPECT_EQ(a.equalities[0].column, "conversation_id");
  EXPECT_EQ(a.equalities[0].kind, Equality::Kind::integer);
  EXPECT_EQ(a.equalities[0].text, "42");
  EXPECT_EQ(a.equalities[1].column, "author");
  EXPECT_EQ(a.equalities[1].kind, Equality::Kind::string);
  EXPECT_EQ(a.equalities[1].text, "x");
  EXPECT_EQ(a.equalities[2].kind, Equality::Kind::param);
  EXPECT_EQ(a.equalities[2].param, 2);
  EXPECT_TRUE(a.equalities[2].param_used_once);
  EXPECT_EQ(a.equalities[3].text, "-7");
  EXPECT_EQ(a.max_param, 2);
}

TEST(CacheAnalysis, IntegersBeyondInt4AndEscapedStringsKeepTheirExactValue) {
  Analysis a =
      analyze("SELECT * FROM t WHERE a = 3000000000 AND b = -9223372036854775808 AND c = E'it\\'s' AND d = 'o''k'");
  ASSERT_EQ(a.equalities.size(), 4u);
  EXPECT_EQ(a.equalities[0].kind, Equality::Kind::integer);
  EXPECT_EQ(a.equalities[0].text, "3000000000");
  EXPECT_EQ(a.equalities[1].text, "-9223372036854775808");
  EXPECT_EQ(a.equalities[2].text, "it's");
  EXPECT_EQ(a.equalities[3].text, "o'k");
}

TEST(CacheAnalysis, EqualitiesNeedAnUnambiguousTopLevelColumn) {
  // Qualified by alias or by table name: found.
  Analysis a =
      analyze("SELECT * FROM messages m JOIN users u ON u.id = m.author WHERE m.conversation_id = 1 AND u.id = 2");
  ASSERT_EQ(a.equalities.size(), 2u);
  EXPECT_EQ(a.equalities[0].relation, 0u);
  EXPECT_EQ(a.equalities[1].relation, 1u);
  a = analyze("SELECT * FROM app.messages WHERE messages.cid = 1 AND app.messages.cid = 2");
  ASSERT_EQ(a.equalities.size(), 2u);
  // With an alias, the table name no longer qualifies.
  a = analyze("SELECT * FROM messages m, users WHERE messages.cid = 1");
  EXPECT_TRUE(a.equalities.empty());
  // Unqualified with two FROM items: unknown owner.
  a = analyze("SELECT * FROM messages, users WHERE cid = 1");
  EXPECT_TRUE(a.equalities.empty());
  // Unqualified with one FROM item that is a WITH query: not a table.
  a = analyze("WITH w AS (SELECT * FROM t) SELECT * FROM w WHERE id = 1");
  EXPECT_TRUE(a.equalities.empty());
  // Inside OR, NOT, a subquery, or compared with an expression: nothing.
  for (const char* sql :
       {"SELECT * FROM t WHERE id = 1 OR id = 2", "SELECT * FROM t WHERE NOT (id = 1)",
        "SELECT * FROM t WHERE x IN (SELECT y FROM u WHERE id = 1)", "SELECT * FROM t WHERE id = 1 + 1",
        "SELECT * FROM t WHERE id = 1.5", "SELECT * FROM t WHERE id = NULL", "SELECT * FROM t WHERE id = '1'::numeric",
        "SELECT * FROM t WHERE id < 1", "SELECT * FROM t WHERE lower(id) = 'a'",
        "SELECT * FROM t, u WHERE t.id = u.id"}) {
    a = analyze(sql);
    ASSERT_TRUE(a.cacheable) << sql << ": " << a.reason;
    EXPECT_TRUE(a.equalities.empty()) << sql;
  }
}

TEST(CacheAnalysis, APlainCastOfTheValueIsRecordedAndOthersAreNoEquality) {
  Analysis a = analyze("SELECT * FROM t WHERE a = 'x'::uuid AND b = $1::bigint AND c = 1::pg_catalog.int2");
  ASSERT_EQ(a.equalities.size(), 3u);
  EXPECT_EQ(a.equalities[0].cast, "uuid");
  EXPECT_EQ(a.equalities[1].cast, "int8");
  EXPECT_EQ(a.equalities[1].kind, Equality::Kind::param);
  EXPECT_EQ(a.equalities[2].cast, "int2");
  for (const char* sql : {"SELECT * FROM t WHERE a = 'x'::varchar(2)", "SELECT * FROM t WHERE a = 'x'::date",
                          "SELECT * FROM t WHERE a = '{1}'::int8[]", "SELECT * FROM t WHERE a = 'x'::text::int8",
                          "SELECT * FROM t WHERE a::int8 = 1"})
    EXPECT_TRUE(analyze(sql).equalities.empty()) << sql;
}

TEST(CacheAnalysis, AParameterUsedTwiceIsMarkedSoItsTypeIsNotAssumed) {
  Analysis a = analyze("SELECT $1::float8 FROM t WHERE id = $1");
  ASSERT_EQ(a.equalities.size(), 1u);
  EXPECT_FALSE(a.equalities[0].param_used_once);
}

TEST(CacheAnalysis, HintsComeFromCommentsOnly) {
  Analysis a = analyze("/* pgcohere:cache */ SELECT * FROM t");
  EXPECT_TRUE(a.cacheable);
  EXPECT_EQ(a.hint, Hint::cache);
  EXPECT_FALSE(a.hint_ttl_seconds);
  a = analyze("SELECT * FROM t /* pgcohere:cache ttl=30 */");
  EXPECT_EQ(a.hint, Hint::cache);
  EXPECT_EQ(a.hint_ttl_seconds, 30);
  a = analyze("SELECT * FROM t -- pgcohere:cache  ttl=5\n");
  EXPECT_EQ(a.hint_ttl_seconds, 5);
  a = analyze("/*pgcohere:nocache*/ SELECT * FROM t");
  EXPECT_FALSE(a.cacheable);
  EXPECT_EQ(a.hint, Hint::nocache);
  EXPECT_NE(a.reason.find("nocache"), std::string::npos);
  // A hint in a string literal or an identifier is no hint.
  a = analyze("SELECT '/* pgcohere:nocache */' FROM t");
  EXPECT_TRUE(a.cacheable);
  EXPECT_EQ(a.hint, Hint::none);
  a = analyze("SELECT \"/* pgcohere:nocache */\" FROM t");
  EXPECT_TRUE(a.cacheable);
  // nocache wins whatever the order.
  a = analyze("/* pgcohere:cache ttl=9 */ SELECT * FROM t /* pgcohere:nocache */");
  EXPECT_EQ(a.hint, Hint::nocache);
  EXPECT_FALSE(a.cacheable);
}

TEST(CacheAnalysis, AHintCannotOverrideTheSafetyChecks) {
  Analysis a = analyze("/* pgcohere:cache ttl=60 */ SELECT now() FROM t");
  EXPECT_EQ(a.hint, Hint::cache);
  EXPECT_FALSE(a.cacheable);
  a = analyze("/* pgcohere:cache */ DELETE FROM t");
  EXPECT_FALSE(a.cacheable);
}

TEST(CacheAnalysis, AMalformedHintIsRefusedWithItsText) {
  for (const char* sql : {"/* pgcohere:cache ttl=abc */ SELECT * FROM t", "/* pgcohere:cache ttl=0 */ SELECT * FROM t",
                          "/* pgcohere:cache ttl=-5 */ SELECT * FROM t", "/* pgcohere:caches */ SELECT * FROM t",
                          "/* pgcohere:cache ttl=99999999999 */ SELECT * FROM t", "/* pgcohere: */ SELECT * FROM t"}) {
    Analysis a = analyze(sql);
    EXPECT_FALSE(a.cacheable) << sql;
    EXPECT_NE(a.reason.find("malformed cache hint"), std::string::npos) << sql << ": " << a.reason;
  }
}

TEST(CacheAnalysis, SessionDependentFactsAreRecordedForResolve) {
  EXPECT_TRUE(analyze("SELECT * FROM t WHERE a = 1").names_operators);
  EXPECT_FALSE(analyze("SELECT a FROM t").names_operators);
  EXPECT_FALSE(analyze("SELECT DISTINCT a FROM t JOIN u ON true ORDER BY a").names_operators);
  // Implicit "=" lookups by name.
  EXPECT_TRUE(analyze("SELECT a FROM t WHERE a IN (SELECT b FROM u)").names_operators);
  EXPECT_TRUE(analyze("SELECT CASE a WHEN 1 THEN 2 END FROM t").names_operators);
  EXPECT_TRUE(analyze("SELECT a FROM t JOIN u USING (a)").names_operators);
  EXPECT_TRUE(analyze("SELECT a FROM t NATURAL JOIN u").names_operators);
  EXPECT_TRUE(analyze("SELECT a COLLATE \"C\" FROM t").names_operators);
  EXPECT_TRUE(analyze("SELECT * FROM t WHERE a = 'é'").non_ascii);
  EXPECT_FALSE(analyze("SELECT * FROM t WHERE a = 'e'").non_ascii);
}

TEST(CacheAnalysis, DeepNestingIsRefusedNotACrash) {
  std::string sql = "SELECT * FROM t WHERE a = ";
  for (int i = 0; i < 3000; ++i) sql += "(";
  sql += "1";
  for (int i = 0; i < 3000; ++i) sql += ")";
  Analysis a = analyze(sql);  // parentheses alone add no nodes: this one is fine
  EXPECT_TRUE(a.cacheable) << a.reason;
  sql = "SELECT * FROM t WHERE a = 1";
  for (int i = 0; i < 300; ++i) sql = "SELECT * FROM t WHERE a IN (" + sql + ")";
  ASSERT_LE(sql.size(), kMaxAnalyzedBytes);
  a = analyze(sql);
  EXPECT_FALSE(a.cacheable);
  EXPECT_EQ(a.reason, "nested too deeply");
}

TEST(CacheAnalysis, LeftDeepOperatorChainsThatOverflowProtobufUnpackAreRefused) {
  // 5,000 levels crashed protobuf-c's recursive unpack; ~8,000 (just under the size limit)
  // is the deepest tree an accepted text can give.
  for (int n : {5000, 8000}) {
    std::string sql = "SELECT 1";
    for (int i = 0; i < n; ++i) sql += "+1";
    sql += " FROM t";
    ASSERT_LE(sql.size(), kMaxAnalyzedBytes);
    Analysis a = analyze(sql);
    EXPECT_FALSE(a.cacheable);
    EXPECT_EQ(a.reason, "nested too deeply") << n;
  }
}

TEST(CacheAnalysis, TextsLongerThanTheLimitAreNotParsed) {
  // 25,000 levels crash libpg_query itself while it serializes the tree.
  std::string sql = "SELECT 1";
  for (int i = 0; i < 25000; ++i) sql += "+1";
  sql += " FROM t";
  Analysis a = analyze(sql);
  EXPECT_FALSE(a.cacheable);
  EXPECT_NE(a.reason.find("longer than 16384 bytes"), std::string::npos) << a.reason;
  std::string big = "SELECT * FROM t WHERE a IN (";
  while (big.size() < kMaxAnalyzedBytes) big += "1,";
  big += "1)";
  EXPECT_FALSE(analyze(big).cacheable);
}
