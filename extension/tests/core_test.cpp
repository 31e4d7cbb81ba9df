// Unit tests of the extension's pure C++ core (no PostgreSQL): `make -C extension core-test`.
#include <gtest/gtest.h>

#include <algorithm>

#include "../core.hpp"

using namespace pgcohere::core;

TEST(Template, ParsesPlaceholdersAndKinds) {
    Template t = parse_template("msg:history:{conversation_id}:*");
    EXPECT_TRUE(t.pattern);
    ASSERT_EQ(t.columns.size(), 1u);
    EXPECT_EQ(t.columns[0], "conversation_id");
    EXPECT_EQ(t.coarse, "msg:history:*:*");
    EXPECT_EQ(t.coarse_kind, kPattern);

    Template k = parse_template("user:{id}");
    EXPECT_FALSE(k.pattern);
    EXPECT_EQ(k.coarse, "user:*");
    EXPECT_EQ(k.coarse_kind, kPattern);

    Template plain = parse_template("all:users");
    EXPECT_EQ(plain.coarse, "all:users");
    EXPECT_EQ(plain.coarse_kind, kKey);
}

TEST(Template, RejectsMalformed) {
    EXPECT_THROW(parse_template(""), TemplateError);
    EXPECT_THROW(parse_template("a:{id"), TemplateError);
    EXPECT_THROW(parse_template("a:{}"), TemplateError);
    EXPECT_THROW(parse_template("a:}"), TemplateError);
    EXPECT_THROW(parse_template("a:{x{y}"), TemplateError);
}

TEST(Render, KeysVerbatimPatternsEscaped) {
    Template key = parse_template("user:{name}");
    auto r = render(key, {"a*b"});
    EXPECT_EQ(r.kind, kKey);
    EXPECT_EQ(r.text, "user:a*b");

    Template pat = parse_template("feed:{name}:*");
    r = render(pat, {"*?[]\\"});
    EXPECT_EQ(r.kind, kPattern);
    EXPECT_EQ(r.text, "feed:\\*\\?\\[\\]\\\\:*");
}

TEST(Render, NullWidensOnlyItsPlaceholderAndEscapesTheRest) {
    Template t = parse_template("m:{a}:{b}");
    auto r = render(t, {nullptr, "x*"});
    EXPECT_EQ(r.kind, kPattern);
    EXPECT_EQ(r.text, "m:*:x\\*");
}

TEST(CacheTags, NameTheRelationByOidAsDocsCacheMdSays) {
    EXPECT_EQ(cache_tbl_tag(16384), "tbl:16384");
    EXPECT_EQ(cache_all_tag(4294967295u), "all:4294967295");
    EXPECT_EQ(cache_row_tag_prefix(16390, "conversation_id") + "42", "row:16390:conversation_id=42");
    EXPECT_EQ(entry_line(kCachePolicy, cache_policy_text(16384)), "c 16384");
}

TEST(CacheTags, RowTagValuesTravelEscapedOnOneLine) {
    // a value holding LF and a backslash stays one entry line
    EXPECT_EQ(entry_line(kTag, cache_row_tag_prefix(7, "name") + "a\nb\\c"), "t row:7:name=a\\nb\\\\c");
}

TEST(CacheTags, OnlyTheQueryCachesEntriesMovePublished) {
    EXPECT_TRUE(affects_query_cache(kTag, cache_tbl_tag(1)));
    EXPECT_TRUE(affects_query_cache(kTag, cache_all_tag(1)));
    EXPECT_TRUE(affects_query_cache(kTag, cache_row_tag_prefix(1, "id") + "7"));
    EXPECT_TRUE(affects_query_cache(kCachePolicy, cache_policy_text(1)));
    EXPECT_TRUE(affects_query_cache(kResync, "ring-overflow"));
    EXPECT_FALSE(affects_query_cache(kTag, "table:public.messages"));  // a watched table's own tag
    EXPECT_FALSE(affects_query_cache(kKey, "tbl:1"));
    EXPECT_FALSE(affects_query_cache(kPattern, "row:*"));
}

TEST(KeySet, SavepointRollbackDropsExactlyItsEntries) {
    KeySet s;
    EXPECT_TRUE(s.add(1, kKey, "a"));
    EXPECT_TRUE(s.add(2, kKey, "b"));
    EXPECT_FALSE(s.add(2, kKey, "a"));  // already in the parent
    EXPECT_TRUE(s.add(3, kKey, "c"));
    s.abort_sub(3);
    EXPECT_EQ(s.size(), 2u);
    s.commit_sub(2);
    EXPECT_EQ(s.size(), 2u);
    EXPECT_TRUE(s.add(2, kKey, "d"));
    s.abort_sub(2);
    std::vector<std::string> got;
    s.for_each([&](char kind, std::string_view text) { got.push_back(std::string(1, kind) + std::string(text)); });
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<std::string>{"ka", "kb"}));
}

TEST(Glob, KeyFamilies) {
    EXPECT_EQ(key_family("user:profile:42", false), "user:profile:*");
    EXPECT_EQ(key_family("user:profile:42:avatar", false), "user:profile:*");
    EXPECT_EQ(key_family("user:42", false), "user:*");
    EXPECT_EQ(key_family("feed:global", false), "feed:*");
    EXPECT_EQ(key_family("v2:user:7", false), "v2:user:*");
    EXPECT_EQ(key_family("homepage", false), "homepage");
    EXPECT_EQ(key_family("a*b", false), "a\\*b");
    EXPECT_EQ(key_family("x*:1", false), "x\\*:*");
    EXPECT_EQ(key_family("feed:*", true), "feed:*");
    // a family always covers the key it was made from
    for (const char* k : {"user:profile:42", "user:profile:42:avatar", "homepage", "a*b", "x*:1", ":", "a::1"})
        EXPECT_TRUE(glob_covers_key(parse_glob(key_family(k, false)), k)) << k;
}
