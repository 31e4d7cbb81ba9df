// Unit tests of the extension's pure C++ core (no PostgreSQL): `make -C extension core-test`.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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

TEST(Lines, EscapeBackslashLfCr) {
    EXPECT_EQ(entry_line('k', "a\\b\nc\rd"), "k a\\\\b\\nc\\rd");
}

TEST(Hmac, KnownVector) {
    // RFC 4231 test case 2
    EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Hmac, KeyLongerThanABlockIsHashedFirst) {
    // RFC 4231 test case 6
    EXPECT_EQ(hmac_sha256_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(Hmac, PreparedKeySignsEveryMessageLikeOpenSslHmac) {
    for (std::size_t key_len : {0, 1, 32, 64, 65, 200}) {
        std::string key(key_len, 'k');
        for (std::size_t i = 0; i < key_len; ++i) key[i] = static_cast<char>(i * 7 + 1);
        HmacSha256 signer(key);
        for (std::size_t msg_len : {0, 1, 55, 64, 150, 1000}) {
            std::string msg(msg_len, 'm');
            unsigned char digest[EVP_MAX_MD_SIZE];
            unsigned int len = 0;
            static const unsigned char empty = 0;
            HMAC(EVP_sha256(), key.empty() ? &empty : reinterpret_cast<const unsigned char*>(key.data()),
                 static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), digest,
                 &len);
            std::string expected;
            for (unsigned int b = 0; b < len; ++b) {
                static const char hex[] = "0123456789abcdef";
                expected += hex[digest[b] >> 4];
                expected += hex[digest[b] & 0xf];
            }
            EXPECT_EQ(signer.hex(msg), expected) << "key " << key_len << " message " << msg_len;
            EXPECT_EQ(signer.hex(msg), expected) << "a second use of the prepared key";
        }
    }
}

TEST(Payload, PreparedSignerGivesTheSamePayloadsAsTheSecret) {
    std::vector<std::string_view> lines{"k a", "p b:*", "t table:public.x"};
    PayloadParams p;
    p.dbname = "db";
    p.secret = "secret";
    std::uint64_t seq = 1;
    auto plain = encode_payloads(lines, p, [&] { return seq; });
    HmacSha256 signer("secret");
    p.signer = &signer;
    EXPECT_EQ(encode_payloads(lines, p, [&] { return seq; }), plain);
}

TEST(Payload, ChunksUnderLimitWithConsecutiveSeqs) {
    std::vector<std::string> owned;
    for (int i = 0; i < 3000; ++i) owned.push_back("k item:" + std::to_string(i) + ":" + std::string(20, 'x'));
    std::vector<std::string_view> lines(owned.begin(), owned.end());
    PayloadParams p;
    p.dbname = "db";
    p.secret = "s";
    p.epoch = 7;
    p.commit_us = 42;
    std::uint64_t seq = 10;
    auto payloads = encode_payloads(lines, p, [&] { return seq++; });
    ASSERT_GT(payloads.size(), 1u);
    std::size_t entries = 0;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        const auto& pl = payloads[i];
        EXPECT_LT(pl.size(), 8000u);
        EXPECT_EQ(pl.rfind("pgc1 7 " + std::to_string(10 + i) + " 42\n", 0), 0u);
        auto sig = pl.rfind("sig ");
        ASSERT_NE(sig, std::string::npos);
        std::string body = pl.substr(0, sig);
        EXPECT_EQ(pl.substr(sig + 4), hmac_sha256_hex("s", "db\n" + body));
        entries += std::count(body.begin(), body.end(), '\n') - 1;
    }
    EXPECT_EQ(entries, owned.size());
}

TEST(Payload, OversizeEntryBecomesResync) {
    std::string big = "k " + std::string(9000, 'a');
    std::vector<std::string_view> lines{big};
    PayloadParams p;
    p.dbname = "db";
    auto payloads = encode_payloads(lines, p, [] { return std::uint64_t{1}; });
    ASSERT_EQ(payloads.size(), 1u);
    EXPECT_NE(payloads[0].find("\nr oversize-entry\n"), std::string::npos);
}

TEST(Payload, DirectModeHeadersCarryTheirOwnSeqAsPos) {
    std::vector<std::string> owned;
    for (int i = 0; i < 3000; ++i) owned.push_back("k item:" + std::to_string(i) + ":" + std::string(20, 'x'));
    std::vector<std::string_view> lines(owned.begin(), owned.end());
    PayloadParams p;
    p.epoch = 7;
    p.commit_us = 42;
    p.pos = PayloadParams::Pos::seq;
    std::uint64_t seq = 10;
    auto payloads = encode_payloads(lines, p, [&] { return seq++; });
    ASSERT_GT(payloads.size(), 1u);
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        std::string s = std::to_string(10 + i);
        EXPECT_EQ(payloads[i].rfind("pgc1 7 " + s + " 42 " + s + "\n", 0), 0u);
        EXPECT_LT(payloads[i].size(), 8000u);
    }
}

TEST(Payload, RingBatchClaimsItsEndPositionOnlyInItsLastChunk) {
    std::vector<std::string> owned;
    for (int i = 0; i < 3000; ++i) owned.push_back("k item:" + std::to_string(i) + ":" + std::string(20, 'x'));
    std::vector<std::string_view> lines(owned.begin(), owned.end());
    PayloadParams p;
    p.epoch = 7;
    p.commit_us = 42;
    p.pos = PayloadParams::Pos::range;
    p.pos_start = 1000;
    p.pos_end = 99999;
    std::uint64_t seq = 3;
    auto payloads = encode_payloads(lines, p, [&] { return seq++; });
    ASSERT_GT(payloads.size(), 1u);
    for (std::size_t i = 0; i + 1 < payloads.size(); ++i)
        EXPECT_EQ(payloads[i].rfind("pgc1 7 " + std::to_string(3 + i) + " 42 1000\n", 0), 0u);
    EXPECT_EQ(payloads.back().rfind("pgc1 7 " + std::to_string(3 + payloads.size() - 1) + " 42 99999\n", 0), 0u);
}

TEST(Payload, BatchOfMarkersOnlyStillSendsOneEntrylessPayload) {
    PayloadParams p;
    p.dbname = "db";
    p.secret = "s";
    p.pos = PayloadParams::Pos::range;
    p.pos_start = 12;
    p.pos_end = 36;
    EXPECT_TRUE(encode_payloads({}, p, [] { return std::uint64_t{5}; }).empty());
    p.emit_empty = true;
    auto payloads = encode_payloads({}, p, [] { return std::uint64_t{5}; });
    ASSERT_EQ(payloads.size(), 1u);
    std::string body = "pgc1 0 5 0 36\n";
    EXPECT_EQ(payloads[0], body + "sig " + hmac_sha256_hex("s", "db\n" + body));
}

TEST(Payload, WithoutPosTheHeaderKeepsItsFourFields) {
    std::string line = "k a";
    PayloadParams p;
    p.epoch = 1;
    p.commit_us = 2;
    auto payloads = encode_payloads({line}, p, [] { return std::uint64_t{3}; });
    ASSERT_EQ(payloads.size(), 1u);
    EXPECT_EQ(payloads[0].rfind("pgc1 1 3 2\nk a\nsig ", 0), 0u);
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

namespace {
bool covers_key(const char* family, const char* key) {
    bool general = glob_covers(parse_glob(family), literal_glob(key));
    EXPECT_EQ(general, glob_covers_key(parse_glob(family), key)) << family << " vs " << key;
    return general;
}
bool covers_pattern(const char* family, const char* pattern) {
    return glob_covers(parse_glob(family), parse_glob(pattern));
}
}  // namespace

TEST(Glob, KeysMatchAsRedisDoes) {
    EXPECT_TRUE(covers_key("user:profile:*", "user:profile:42"));
    EXPECT_TRUE(covers_key("user:profile:*", "user:profile:"));
    EXPECT_FALSE(covers_key("user:profile:*", "user:profil"));
    EXPECT_FALSE(covers_key("user:profile:*", "user:avatar:42"));
    EXPECT_TRUE(covers_key("msg:history:*:*", "msg:history:7:10:0"));
    EXPECT_FALSE(covers_key("msg:history:*:*", "msg:history:7"));
    EXPECT_TRUE(covers_key("config:global", "config:global"));
    EXPECT_FALSE(covers_key("config:global", "config:global2"));
    EXPECT_TRUE(covers_key("a?c", "abc"));
    EXPECT_FALSE(covers_key("a?c", "ac"));
    EXPECT_TRUE(covers_key("v[0-9]:*", "v7:x"));
    EXPECT_FALSE(covers_key("v[0-9]:*", "vx:x"));
    EXPECT_TRUE(covers_key("v[^0-9]:*", "vx:x"));
    EXPECT_FALSE(covers_key("v[^0-9]:*", "v1:x"));
    EXPECT_TRUE(covers_key("v[ab\\]]", "v]"));
    // escaped metacharacters are literal; a key's own '*' is just a character
    EXPECT_TRUE(covers_key("feed:\\*", "feed:*"));
    EXPECT_FALSE(covers_key("feed:\\*", "feed:x"));
    EXPECT_TRUE(covers_key("*", "anything"));
    EXPECT_TRUE(covers_key("*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"));
    EXPECT_FALSE(covers_key("*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

TEST(Glob, PatternCoverIsSound) {
    EXPECT_TRUE(covers_pattern("feed:*", "feed:*"));
    EXPECT_TRUE(covers_pattern("feed:*", "feed:42:*"));
    EXPECT_TRUE(covers_pattern("feed:*", "feed:?"));
    EXPECT_TRUE(covers_pattern("feed:*", "feed:[ab]"));
    EXPECT_TRUE(covers_pattern("*:x", "a*b:x"));
    EXPECT_TRUE(covers_pattern("feed:?", "feed:[ab]"));
    EXPECT_FALSE(covers_pattern("feed:?", "feed:*"));    // feed:ab is not covered
    EXPECT_FALSE(covers_pattern("feed:*:x", "feed:*"));  // feed:y is not covered
    EXPECT_FALSE(covers_pattern("feed:[ab]", "feed:?"));
    EXPECT_FALSE(covers_pattern("feed:a*", "feed:*"));
    EXPECT_FALSE(covers_pattern("user:*", "us*"));
    EXPECT_TRUE(covers_pattern("feed:\\*", "feed:\\*"));
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
