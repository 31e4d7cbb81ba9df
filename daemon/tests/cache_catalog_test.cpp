// resolve(): name lookup as PostgreSQL does it, the relation rules, the TTL and the tags;
// plus the exact value renderings and search_path parsing it relies on.
#include <gtest/gtest.h>

#include "cache/catalog.h"
#include "cache/search_path.h"
#include "cache/values.h"

using namespace pgcohere::cache;

namespace {

CatalogRow row(std::uint32_t relid, std::string nsp, std::string rel, bool cached = true,
               std::optional<std::int64_t> ttl_ms = std::nullopt, std::vector<std::string> by = {},
               std::vector<std::string> types = {}) {
  CatalogRow r;
  r.relid = relid;
  r.nspname = std::move(nsp);
  r.relname = std::move(rel);
  r.cached = cached;
  r.ttl_ms = ttl_ms;
  r.by_columns = std::move(by);
  r.by_types = std::move(types);
  return r;
}

// The chat schema: messages by conversation (int8) and author (uuid), users by name
// (text), profiles by id (int4), a policy-less table, and a shadowed one.
Catalog chat() {
  std::vector<CatalogRow> rows;
  rows.push_back(row(100, "public", "messages", true, 30000, {"conversation_id", "author"}, {"int8", "uuid"}));
  rows.push_back(row(101, "public", "users", true, std::nullopt, {"name"}, {"text"}));
  rows.push_back(row(102, "public", "profiles", true, 15000, {"id", "bio"}, {"int4", "other"}));
  rows.push_back(row(103, "public", "small", true, 5000, {"n"}, {"int2"}));
  rows.push_back(row(200, "archive", "messages", false));
  rows.push_back(row(300, "app", "users", true, 60000, {"name"}, {"varchar"}));
  auto built = build_catalog(std::move(rows));
  EXPECT_TRUE(built.ok()) << built.error;
  return built.catalog;
}

const std::string kPath = "\"$user\", public";
constexpr std::int64_t kDefaultTtl = 20000;

Resolution run(std::string_view sql, const Catalog& c = chat(), std::string_view path = kPath,
               const Params& params = {}, Session session = {}) {
  session.search_path = path;
  if (session.role.empty()) session.role = "alice";
  return resolve(analyze(sql), c, session, params, kDefaultTtl);
}

std::vector<std::string> tags(std::initializer_list<const char*> t) { return {t.begin(), t.end()}; }

}  // namespace

TEST(CacheResolve, ACacheEnabledTableGetsItsTableTagAndTtl) {
  Resolution r = run("SELECT * FROM messages");
  ASSERT_TRUE(r.cacheable) << r.reason;
  EXPECT_EQ(r.relids, std::vector<std::uint32_t>{100});
  EXPECT_EQ(r.tags, tags({"tbl:100"}));
  EXPECT_EQ(r.ttl_ms, 30000);
}

TEST(CacheResolve, TheTtlIsTheSmallestOfTheTablesAndTheDefaultFillsAMissingOne) {
  Resolution r = run("SELECT * FROM messages JOIN users ON true");
  ASSERT_TRUE(r.cacheable) << r.reason;
  EXPECT_EQ(r.ttl_ms, kDefaultTtl);  // users has no TTL: 20 s < 30 s
  r = run("SELECT * FROM messages, profiles");
  EXPECT_EQ(r.ttl_ms, 15000);
  r = run("/* pgcohere:cache ttl=120 */ SELECT * FROM messages, profiles");
  EXPECT_EQ(r.ttl_ms, 120000);  // the hint overrides
}

TEST(CacheResolve, ANonPositiveTtlIsNotCacheable) {
  std::vector<CatalogRow> rows{row(1, "public", "t", true, 0)};
  Resolution r = run("SELECT * FROM t", build_catalog(rows).catalog);
  EXPECT_FALSE(r.cacheable);
  EXPECT_NE(r.reason.find("TTL"), std::string::npos);
}

TEST(CacheResolve, NamesResolveThroughTheSearchPathLikePostgres) {
  // "$user" is alice, who has no schema: public wins.
  EXPECT_EQ(run("SELECT * FROM users").relids, std::vector<std::uint32_t>{101});
  // app first: app.users.
  EXPECT_EQ(run("SELECT * FROM users", chat(), "app, public").relids, std::vector<std::uint32_t>{300});
  // $user = app.
  Session s;
  s.role = "app";
  EXPECT_EQ(run("SELECT * FROM users", chat(), kPath, {}, s).relids, std::vector<std::uint32_t>{300});
  // Explicit schema.
  EXPECT_EQ(run("SELECT * FROM app.users").relids, std::vector<std::uint32_t>{300});
  // Case: unquoted names in search_path are downcased, quoted ones are not.
  EXPECT_EQ(run("SELECT * FROM users", chat(), "APP, public").relids, std::vector<std::uint32_t>{300});
  EXPECT_EQ(run("SELECT * FROM users", chat(), "\"APP\", public").relids, std::vector<std::uint32_t>{101});
}

TEST(CacheResolve, TheFirstMatchOnThePathDecidesEvenIfItIsNotCacheEnabled) {
  Resolution r = run("SELECT * FROM messages", chat(), "archive, public");
  EXPECT_FALSE(r.cacheable);
  EXPECT_NE(r.reason.find("archive.messages is not cache-enabled"), std::string::npos) << r.reason;
}

TEST(CacheResolve, UnknownRelationsAreNotCacheable) {
  Resolution r = run("SELECT * FROM nothere");
  EXPECT_FALSE(r.cacheable);
  EXPECT_NE(r.reason.find("nothere is not a cache-enabled table"), std::string::npos) << r.reason;
  r = run("SELECT * FROM messages", chat(), "other");  // not on the path at all
  EXPECT_FALSE(r.cacheable);
  r = run("SELECT * FROM messages JOIN nothere ON true");  // one bad table spoils the query
  EXPECT_FALSE(r.cacheable);
}

TEST(CacheResolve, TemporaryTablesShadowAndAreNeverCached) {
  std::vector<CatalogRow> rows{row(1, "public", "t"), row(2, "pg_temp_3", "t")};
  rows[1].temp = true;
  Catalog c = build_catalog(rows).catalog;
  Resolution r = run("SELECT * FROM t", c);
  EXPECT_FALSE(r.cacheable);
  EXPECT_NE(r.reason.find("temporary"), std::string::npos);
  EXPECT_FALSE(run("SELECT * FROM pg_temp.t", c).cacheable);
  EXPECT_FALSE(run("SELECT * FROM pg_temp_3.t", c).cacheable);
  // The schema-qualified name of the permanent table is unaffected.
  EXPECT_TRUE(run("SELECT * FROM public.t", c).cacheable);
}

TEST(CacheResolve, SystemCatalogsComeFirstAndAreNeverCached) {
  std::vector<CatalogRow> rows{row(1, "public", "pg_class"), row(1259, "pg_catalog", "pg_class", false),
                               row(2, "information_schema", "tables", true), row(3, "public", "tables")};
  Catalog c = build_catalog(rows).catalog;
  Resolution r = run("SELECT * FROM pg_class", c);  // pg_catalog is searched first
  EXPECT_FALSE(r.cacheable);
  EXPECT_NE(r.reason.find("system catalog"), std::string::npos) << r.reason;
  // Unless listed after public: then public.pg_class is the one (no operator in the query).
  EXPECT_TRUE(run("SELECT * FROM pg_class", c, "public, pg_catalog").cacheable);
  EXPECT_FALSE(run("SELECT * FROM information_schema.tables", c).cacheable);
  EXPECT_FALSE(run("SELECT * FROM tables", c, "information_schema, public").cacheable);
  EXPECT_TRUE(run("SELECT * FROM tables", c).cacheable);
}

TEST(CacheResolve, RowLevelSecurityIsNeverCached) {
  std::vector<CatalogRow> rows{row(1, "public", "t")};
  rows[0].rls = true;
  Resolution r = run("SELECT * FROM t", build_catalog(rows).catalog);
  EXPECT_FALSE(r.cacheable);
  EXPECT_NE(r.reason.find("row-level security"), std::string::npos);
}

TEST(CacheResolve, ASchemaBeforePgCatalogCouldShadowBuiltinsSoOperatorsAreThenRefused) {
  Resolution r = run("SELECT * FROM messages WHERE conversation_id = 1", chat(), "public, pg_catalog");
  EXPECT_FALSE(r.cacheable);
  EXPECT_NE(r.reason.find("before pg_catalog"), std::string::npos) << r.reason;
  EXPECT_TRUE(run("SELECT * FROM messages WHERE conversation_id = 1", chat(), "pg_catalog, public").cacheable);
  EXPECT_TRUE(run("SELECT * FROM messages WHERE conversation_id = 1", chat(), "pg_temp, pg_catalog, public").cacheable);
}

TEST(CacheResolve, SessionsWhoseTextLibpgQueryMightMisreadAreNotCacheable) {
  Session s;
  s.standard_conforming_strings = false;
  EXPECT_FALSE(run("SELECT * FROM messages", chat(), kPath, {}, s).cacheable);
  s = {};
  s.client_encoding = "SJIS";
  EXPECT_FALSE(run("SELECT * FROM messages", chat(), kPath, {}, s).cacheable);
  s.client_encoding = "LATIN1";
  EXPECT_TRUE(run("SELECT * FROM messages", chat(), kPath, {}, s).cacheable);
  EXPECT_FALSE(run("SELECT * FROM messages WHERE body = 'é'", chat(), kPath, {}, s).cacheable);
  EXPECT_TRUE(run("SELECT * FROM messages WHERE body = 'é'").cacheable);
  EXPECT_FALSE(run("SELECT * FROM messages", chat(), "\"unclosed").cacheable);
}

TEST(CacheResolve, AnEqualityOnAByColumnGivesARowTagPlusAllTag) {
  Resolution r = run("SELECT * FROM messages WHERE conversation_id = 42 ORDER BY id LIMIT 20");
  ASSERT_TRUE(r.cacheable) << r.reason;
  EXPECT_EQ(r.tags, tags({"all:100", "row:100:conversation_id=42"}));
  r = run("SELECT * FROM users WHERE name = 'bob'");
  EXPECT_EQ(r.tags, tags({"all:101", "row:101:name=bob"}));
  r = run("SELECT * FROM messages m WHERE m.author = '{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}'");
  EXPECT_EQ(r.tags, tags({"all:100", "row:100:author=a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}));
  // The first usable `by` column in policy order.
  r = run("SELECT * FROM messages WHERE author = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' AND conversation_id = 7");
  EXPECT_EQ(r.tags, tags({"all:100", "row:100:conversation_id=7"}));
}

TEST(CacheResolve, IntegerValuesAreRenderedCanonicallyAndRangeChecked) {
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = ' +0042 '").tags,
            tags({"all:100", "row:100:conversation_id=42"}));
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = 9223372036854775807").tags,
            tags({"all:100", "row:100:conversation_id=9223372036854775807"}));
  // Out of the column type's range: no row can match, fall back.
  EXPECT_EQ(run("SELECT * FROM profiles WHERE id = 3000000000").tags, tags({"tbl:102"}));
  EXPECT_EQ(run("SELECT * FROM small WHERE n = 40000").tags, tags({"tbl:103"}));
  EXPECT_EQ(run("SELECT * FROM small WHERE n = -32768").tags, tags({"all:103", "row:103:n=-32768"}));
  // Not an integer literal for an integer column: fall back.
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = '4x'").tags, tags({"tbl:100"}));
  EXPECT_EQ(run("SELECT * FROM users WHERE name = 42").tags, tags({"tbl:101"}));
  EXPECT_EQ(run("SELECT * FROM messages WHERE author = 'not-a-uuid'").tags, tags({"tbl:100"}));
}

TEST(CacheResolve, PlainCastsOfTheValueToTheColumnsKindOfTypeKeepTheRowTag) {
  EXPECT_EQ(run("SELECT * FROM messages WHERE author = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid").tags,
            tags({"all:100", "row:100:author=a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}));
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = '42'::int8").tags,
            tags({"all:100", "row:100:conversation_id=42"}));
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = CAST(7 AS integer)").tags,
            tags({"all:100", "row:100:conversation_id=7"}));
  EXPECT_EQ(run("SELECT * FROM users WHERE name = 42::text").tags, tags({"all:101", "row:101:name=42"}));
  EXPECT_EQ(run("SELECT * FROM users WHERE name = 'x'::varchar").tags, tags({"all:101", "row:101:name=x"}));
  // The value would not fit the cast type, a modifier changes the value, another kind of
  // type compares differently: the table tag.
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = 100000::int2").tags, tags({"tbl:100"}));
  EXPECT_EQ(run("SELECT * FROM users WHERE name = 'abcdef'::varchar(3)").tags, tags({"tbl:101"}));
  EXPECT_EQ(run("SELECT * FROM users WHERE name = 'x '::char(2)").tags, tags({"tbl:101"}));
  EXPECT_EQ(run("SELECT * FROM messages WHERE author = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::text").tags,
            tags({"tbl:100"}));
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = '42'::numeric").tags, tags({"tbl:100"}));
  // A cast parameter takes the cast's type unless Parse declared another one.
  Params p;
  p.values = {std::string("\x00\x00\x00\x00\x00\x00\x00\x05", 8)};
  p.formats = {1};
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = $1::int8", chat(), kPath, p).tags,
            tags({"all:100", "row:100:conversation_id=5"}));
  p.types = {23};
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = $1::int8", chat(), kPath, p).tags, tags({"tbl:100"}));
}

TEST(CacheResolve, OtherTypesAndNonByColumnsFallBackToTheTableTag) {
  EXPECT_EQ(run("SELECT * FROM profiles WHERE bio = 'x'").tags, tags({"tbl:102"}));
  EXPECT_EQ(run("SELECT * FROM profiles WHERE age = 3").tags, tags({"tbl:102"}));
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = 1 OR conversation_id = 2").tags, tags({"tbl:100"}));
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id IN (1, 2)").tags, tags({"tbl:100"}));
}

TEST(CacheResolve, EachOccurrenceOfATableGetsItsOwnTag) {
  // The subquery reads messages without a row restriction: the table tag is needed too.
  Resolution r = run("SELECT * FROM messages WHERE conversation_id = 1 AND id > (SELECT max(id) - 10 FROM messages)");
  ASSERT_TRUE(r.cacheable) << r.reason;
  EXPECT_EQ(r.tags, tags({"all:100", "row:100:conversation_id=1", "tbl:100"}));
  r = run("SELECT * FROM messages a JOIN messages b ON a.id = b.reply_to WHERE a.conversation_id = 1");
  EXPECT_EQ(r.tags, tags({"all:100", "row:100:conversation_id=1", "tbl:100"}));
  r = run("SELECT * FROM messages m JOIN users u ON u.name = m.sender WHERE m.conversation_id = 5 AND u.name = 'x'");
  EXPECT_EQ(r.tags, tags({"all:100", "all:101", "row:100:conversation_id=5", "row:101:name=x"}));
}

TEST(CacheResolve, TextParametersAreRenderedLikeLiterals) {
  Params p;
  p.values = {std::string("0042")};
  Resolution r = run("SELECT * FROM messages WHERE conversation_id = $1", chat(), kPath, p);
  ASSERT_TRUE(r.cacheable) << r.reason;
  EXPECT_EQ(r.tags, tags({"all:100", "row:100:conversation_id=42"}));
  p.values = {std::string("bob's")};
  EXPECT_EQ(run("SELECT * FROM users WHERE name = $1", chat(), kPath, p).tags, tags({"all:101", "row:101:name=bob's"}));
  p.values = {std::string("A0EEBC999C0B4EF8BB6D6BB9BD380A11")};
  EXPECT_EQ(run("SELECT * FROM messages WHERE author = $1", chat(), kPath, p).tags,
            tags({"all:100", "row:100:author=a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}));
}

TEST(CacheResolve, BinaryParametersAreReadInNetworkOrder) {
  Params p;
  p.values = {std::string("\x00\x00\x00\x00\x00\x00\x01\x00", 8)};
  p.formats = {1};
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = $1", chat(), kPath, p).tags,
            tags({"all:100", "row:100:conversation_id=256"}));
  // Declared int4 for an int8 column: four bytes, sign kept.
  p.values = {std::string("\xff\xff\xff\xfe", 4)};
  p.types = {23};
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = $1", chat(), kPath, p).tags,
            tags({"all:100", "row:100:conversation_id=-2"}));
  // Wrong width for the declared type: fall back.
  p.values = {std::string("\x00\x01", 2)};
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = $1", chat(), kPath, p).tags, tags({"tbl:100"}));
  // Text as bytes, uuid as 16 bytes.
  p = {};
  p.values = {std::string("zoë")};
  p.formats = {1};
  EXPECT_EQ(run("SELECT * FROM users WHERE name = $1", chat(), kPath, p).tags, tags({"all:101", "row:101:name=zoë"}));
  p.values = {std::string("\xa0\xee\xbc\x99\x9c\x0b\x4e\xf8\xbb\x6d\x6b\xb9\xbd\x38\x0a\x11", 16)};
  EXPECT_EQ(run("SELECT * FROM messages WHERE author = $1", chat(), kPath, p).tags,
            tags({"all:100", "row:100:author=a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}));
}

TEST(CacheResolve, ParameterFormatsFollowBindRules) {
  Params p;
  p.values = {std::string("x"), std::string("\x00\x00\x00\x00\x00\x00\x00\x07", 8)};
  p.formats = {0, 1};
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = $2 AND body = $1", chat(), kPath, p).tags,
            tags({"all:100", "row:100:conversation_id=7"}));
  EXPECT_EQ(p.format(0), 0);
  EXPECT_EQ(p.format(1), 1);
  EXPECT_EQ(p.format(2), -1);
  p.formats = {1};
  EXPECT_EQ(p.format(5), 1);
  p.formats = {};
  EXPECT_EQ(p.format(5), 0);
}

TEST(CacheResolve, ANullParameterGivesNoRowTag) {
  Params p;
  p.values = {std::nullopt};
  Resolution r = run("SELECT * FROM messages WHERE conversation_id = $1", chat(), kPath, p);
  ASSERT_TRUE(r.cacheable) << r.reason;
  EXPECT_EQ(r.tags, tags({"tbl:100"}));
}

TEST(CacheResolve, AParameterWhoseTypeMayComeFromElsewhereGivesNoRowTag) {
  // $1 is float8 here (the target list is analysed first): its bytes are no int8.
  Params p;
  p.values = {std::string("\x40\x45\x00\x00\x00\x00\x00\x00", 8)};
  p.formats = {1};
  EXPECT_EQ(run("SELECT $1::float8, * FROM messages WHERE conversation_id = $1", chat(), kPath, p).tags,
            tags({"tbl:100"}));
  // Declared types decide; one that is not the column's kind of type falls back.
  p.types = {20};
  EXPECT_EQ(run("SELECT $1::float8, * FROM messages WHERE conversation_id = $1", chat(), kPath, p).tags,
            tags({"all:100", "row:100:conversation_id=4631107791820423168"}));
  p = {};
  p.values = {std::string("5")};
  p.types = {701};  // float8
  EXPECT_EQ(run("SELECT * FROM messages WHERE conversation_id = $1", chat(), kPath, p).tags, tags({"tbl:100"}));
  p.types = {1042};  // bpchar for a text column: compared after trailing spaces go
  EXPECT_EQ(run("SELECT * FROM users WHERE name = $1", chat(), kPath, p).tags, tags({"tbl:101"}));
}

TEST(CacheResolve, MissingParametersAndClockWordsInParametersAreNotCacheable) {
  EXPECT_FALSE(run("SELECT * FROM messages WHERE conversation_id = $1").cacheable);
  Params p;
  p.values = {std::string("now")};
  Resolution r = run("SELECT * FROM messages WHERE created > $1", chat(), kPath, p);
  EXPECT_FALSE(r.cacheable);
  EXPECT_NE(r.reason.find("current time"), std::string::npos);
  p.formats = {1};  // binary input never reads the clock
  EXPECT_TRUE(run("SELECT * FROM messages WHERE created > $1", chat(), kPath, p).cacheable);
}

TEST(CacheResolve, NonAsciiTextValuesNeedUtf8OnBothSides) {
  Session s;
  s.server_encoding = "LATIN1";
  // U& escapes make a non-ASCII value from ASCII text.
  Resolution r = run("SELECT * FROM users WHERE name = U&'\\00e9'", chat(), kPath, {}, s);
  ASSERT_TRUE(r.cacheable) << r.reason;
  EXPECT_EQ(r.tags, tags({"tbl:101"}));
  EXPECT_EQ(run("SELECT * FROM users WHERE name = U&'\\00e9'").tags, tags({"all:101", "row:101:name=é"}));
}

TEST(CacheResolve, ANotCacheableAnalysisKeepsItsReason) {
  Resolution r = run("SELECT now() FROM messages");
  EXPECT_FALSE(r.cacheable);
  EXPECT_NE(r.reason.find("now()"), std::string::npos);
  EXPECT_TRUE(r.tags.empty());
}

TEST(CacheCatalog, ContradictoryRowsAreRejectedWithTheRow) {
  auto dup = build_catalog({row(1, "public", "t"), row(2, "public", "t")});
  EXPECT_FALSE(dup.ok());
  EXPECT_NE(dup.error.find("row 2 (public.t): listed twice"), std::string::npos) << dup.error;
  EXPECT_EQ(dup.catalog.size(), 0u);
  EXPECT_FALSE(build_catalog({row(0, "public", "t")}).ok());
  EXPECT_FALSE(build_catalog({row(1, "", "t")}).ok());
  EXPECT_FALSE(build_catalog({row(1, "public", "t", true, std::nullopt, {"a"}, {})}).ok());
  EXPECT_TRUE(build_catalog({}).ok());
}

TEST(CacheValues, IntegersFollowPostgresInput) {
  EXPECT_EQ(canonical_integer("  -0012\n", ColumnType::int4), "-12");
  EXPECT_EQ(canonical_integer("+7", ColumnType::int2), "7");
  EXPECT_EQ(canonical_integer("-9223372036854775808", ColumnType::int8), "-9223372036854775808");
  EXPECT_EQ(canonical_integer("9223372036854775808", ColumnType::int8), std::nullopt);
  EXPECT_EQ(canonical_integer("2147483648", ColumnType::int4), std::nullopt);
  EXPECT_EQ(canonical_integer("-2147483648", ColumnType::int4), "-2147483648");
  EXPECT_EQ(canonical_integer("32768", ColumnType::int2), std::nullopt);
  for (const char* bad : {"", " ", "-", "1 2", "1_000", "0x10", "1.0", "1e3", "١"})
    EXPECT_EQ(canonical_integer(bad, ColumnType::int8), std::nullopt) << bad;
  EXPECT_EQ(canonical_integer("1", ColumnType::text), std::nullopt);
}

TEST(CacheValues, UuidsFollowPostgresInputAndPrintLowercase) {
  const std::string want = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
  for (const char* ok : {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
                         "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11",
                         "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "{a0eebc999c0b4ef8bb6d6bb9bd380a11}"})
    EXPECT_EQ(canonical_uuid(ok), want) << ok;
  for (const char* bad : {"", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
                          "a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{a0eebc999c0b4ef8bb6d6bb9bd380a11",
                          " a0eebc999c0b4ef8bb6d6bb9bd380a11", "g0eebc999c0b4ef8bb6d6bb9bd380a11"})
    EXPECT_EQ(canonical_uuid(bad), std::nullopt) << bad;
}

TEST(CacheValues, BinaryIntegersNeedTheDeclaredWidth) {
  EXPECT_EQ(binary_integer(std::string("\xff\xfe", 2), 0, ColumnType::int2), "-2");
  EXPECT_EQ(binary_integer(std::string("\x80\x00\x00\x00", 4), 0, ColumnType::int4), "-2147483648");
  EXPECT_EQ(binary_integer(std::string("\x00\x00\x00\x01\x00\x00\x00\x00", 8), 0, ColumnType::int4), std::nullopt);
  EXPECT_EQ(binary_integer(std::string("\x00\x00\x00\x00\x00\x00\x00\x01", 8), 20, ColumnType::int4), "1");
  EXPECT_EQ(binary_integer(std::string("\x00\x01", 2), 701, ColumnType::int8), std::nullopt);
  EXPECT_EQ(binary_uuid(std::string(15, 'x')), std::nullopt);
}

TEST(CacheSearchPath, ParsesLikeSplitIdentifierString) {
  auto p = parse_search_path("\"$user\", public");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->schemas, (std::vector<std::string>{"$user", "public"}));
  p = parse_search_path("  A ,\"B\"\"c\",d  ");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->schemas, (std::vector<std::string>{"a", "B\"c", "d"}));
  EXPECT_EQ(parse_search_path("")->schemas.size(), 0u);
  EXPECT_EQ(parse_search_path(std::string(70, 'x'))->schemas[0].size(), 63u);
  for (const char* bad : {"a,", ",a", "a b", "\"a", "a,,b"}) EXPECT_FALSE(parse_search_path(bad)) << bad;
}

TEST(CacheSearchPath, PgCatalogComesFirstUnlessListed) {
  EXPECT_EQ(effective_path(*parse_search_path("\"$user\", public"), "bob"),
            (std::vector<std::string>{"pg_catalog", "bob", "public"}));
  EXPECT_EQ(effective_path(*parse_search_path("public, pg_catalog, pg_temp"), "bob"),
            (std::vector<std::string>{"public", "pg_catalog"}));
}

TEST(CacheCatalog, TheNameFilterRulesOutOnlyTextsThatNameNoCachedTable) {
  Catalog c = chat();
  EXPECT_FALSE(c.may_name_cached_table("SELECT abalance FROM pgbench_accounts WHERE aid = $1"));
  EXPECT_FALSE(c.may_name_cached_table("SELECT * FROM archive_messag"));
  EXPECT_TRUE(c.may_name_cached_table("SELECT * FROM MESSAGES"));
  EXPECT_TRUE(c.may_name_cached_table("SELECT * FROM \"Users\""));         // over-approximates: fine
  EXPECT_TRUE(c.may_name_cached_table("SELECT * FROM U&\"\\0075sers\""));  // escapes: always analysed
  EXPECT_FALSE(Catalog().may_name_cached_table("SELECT * FROM messages"));
  // Not cache-enabled names do not count: archive.messages is, but as public.messages.
  auto only_uncached = build_catalog({row(1, "public", "logs", false)});
  EXPECT_FALSE(only_uncached.catalog.may_name_cached_table("SELECT * FROM logs"));
  // A name with a double quote is written with it doubled: the filter gives up.
  auto quoted = build_catalog({row(1, "public", "a\"b")});
  EXPECT_TRUE(quoted.catalog.may_name_cached_table("SELECT 1"));
}

TEST(CacheCatalog, WhenTheFilterSaysNoResolveSaysNoToo) {
  Catalog c = chat();
  for (const char* sql : {"SELECT * FROM pgbench_accounts", "SELECT 1", "SELECT * FROM archive.other",
                          "SELECT * FROM messages", "SELECT * FROM app.users u WHERE u.name = 'x'"}) {
    if (!c.may_name_cached_table(sql)) {
      EXPECT_FALSE(run(sql, c).cacheable) << sql;
    }
  }
}
