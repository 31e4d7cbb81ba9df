// The NOTIFY payload codec (common/contract/payload.h): grammar, escaping, signature binding
// to the database, the extension's chunking, and HMAC-SHA256 with a prepared key.
#include "contract/payload.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

using namespace pgcohere::contract;

namespace {

NotifyPayload sample() {
  NotifyPayload p;
  p.epoch = 1732700000;
  p.seq = 7;
  p.commit_us = 1732700000123456;
  p.entries = {{EntryKind::key, "msg:count:42"},
               {EntryKind::pattern, "msg:history:4\\*2:*"},
               {EntryKind::tag, "table:public.messages"},
               {EntryKind::key, "multi\nline\r\\key"}};
  return p;
}

}  // namespace

TEST(NotifyPayload, RoundTrip) {
  auto text = encode_payload(sample(), "appdb", "s3cret");
  auto r = decode_payload(text, "appdb", "s3cret");
  ASSERT_TRUE(r.ok()) << to_string(r.error) << ": " << r.detail;
  EXPECT_EQ(*r.payload, sample());
}

TEST(NotifyPayload, KnownVector) {
  // Computed independently: python3 -c 'import hmac,hashlib;
  //   print(hmac.new(b"k", b"db\npgc1 1 2 3\nk a\n", hashlib.sha256).hexdigest())'
  std::string body = "pgc1 1 2 3\nk a\n";
  EXPECT_EQ(sign_body(body, "db", "k"),
            "e7477b959d4be181fb2ac0d841fa879f3ccf53f4c3d980d9e2b509c86edb2783");
}

TEST(NotifyPayload, PatternEscapesTravelDoubled) {
  NotifyPayload p = sample();
  auto text = encode_payload(p, "appdb", "s3cret");
  EXPECT_NE(text.find("p msg:history:4\\\\*2:*\n"), std::string::npos);
  EXPECT_NE(text.find("k multi\\nline\\r\\\\key\n"), std::string::npos);
}

TEST(NotifyPayload, WrongDatabaseOrSecretIsRejected) {
  auto text = encode_payload(sample(), "appdb", "s3cret");
  EXPECT_EQ(decode_payload(text, "otherdb", "s3cret").error, PayloadError::signature_mismatch);
  EXPECT_EQ(decode_payload(text, "appdb", "s3creT").error, PayloadError::signature_mismatch);
}

TEST(NotifyPayload, TamperedBodyIsRejected) {
  auto text = encode_payload(sample(), "appdb", "s3cret");
  text[text.find("msg:count:42") + 10] = '3';
  EXPECT_EQ(decode_payload(text, "appdb", "s3cret").error, PayloadError::signature_mismatch);
}

TEST(NotifyPayload, SignatureLineMustBeExact) {
  auto text = encode_payload(sample(), "appdb", "s3cret");
  EXPECT_EQ(decode_payload(text + "\n", "appdb", "s3cret").error, PayloadError::bad_signature_line);
  std::string upper = text;
  for (std::size_t i = upper.size() - 64; i < upper.size(); ++i)
    upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper[i])));
  if (upper != text) {
    EXPECT_EQ(decode_payload(upper, "appdb", "s3cret").error, PayloadError::bad_signature_line);
  }
  EXPECT_EQ(decode_payload("", "appdb", "s3cret").error, PayloadError::bad_signature_line);
  EXPECT_EQ(decode_payload(text.substr(1), "appdb", "s3cret").error,
            PayloadError::signature_mismatch);
}

namespace {
DecodeResult signed_body(const std::string& body) {
  return decode_payload(body + "sig " + sign_body(body, "db", "k"), "db", "k");
}
}  // namespace

TEST(NotifyPayload, GrammarErrorsAreReportedPrecisely) {
  EXPECT_TRUE(signed_body("pgc1 1 2 3\n").ok());  // no entries is legal
  EXPECT_EQ(signed_body("pgc2 1 2 3\n").error, PayloadError::bad_version);
  EXPECT_EQ(signed_body("pgc1 1 2\n").error, PayloadError::bad_header);
  EXPECT_EQ(signed_body("pgc1 1 2 3 4 5\n").error, PayloadError::bad_header);  // 5 fields at most
  EXPECT_EQ(signed_body("pgc1 1 2 3 \n").error, PayloadError::bad_header);
  EXPECT_EQ(signed_body("pgc1 1 2 3 x\n").error, PayloadError::bad_header);
  EXPECT_EQ(signed_body("pgc1 1 2 3 18446744073709551616\n").error, PayloadError::bad_header);
  EXPECT_EQ(signed_body("pgc1 -1 2 3\n").error, PayloadError::bad_header);
  EXPECT_EQ(signed_body("pgc1 1  3\n").error, PayloadError::bad_header);
  EXPECT_EQ(signed_body("pgc1 18446744073709551616 2 3\n").error, PayloadError::bad_header);
  EXPECT_TRUE(signed_body("pgc1 18446744073709551615 2 3\n").ok());
  EXPECT_EQ(signed_body("pgc1 1 2 3\nx a\n").error, PayloadError::bad_entry);
  EXPECT_EQ(signed_body("pgc1 1 2 3\nka\n").error, PayloadError::bad_entry);
  EXPECT_EQ(signed_body("pgc1 1 2 3\nk\n").error, PayloadError::bad_entry);
  EXPECT_EQ(signed_body("pgc1 1 2 3\nk a\\x\n").error, PayloadError::bad_escape);
  EXPECT_EQ(signed_body("pgc1 1 2 3\nk a\\\n").error, PayloadError::bad_escape);
  auto r = signed_body("pgc1 1 2 3\nk a\nq b\n");
  EXPECT_EQ(r.error, PayloadError::bad_entry);
  EXPECT_EQ(r.detail, "line 3");
}

TEST(NotifyPayload, HeaderWithoutPosDecodesWithNoPos) {
  auto r = signed_body("pgc1 1 2 3\nk a\n");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.payload->pos.has_value());
  EXPECT_EQ(r.payload->commit_us, 3u);
}

TEST(NotifyPayload, HeaderWithPosDecodesItsFifthField) {
  auto r = signed_body("pgc1 1 2 3 18446744073709551615\nk a\n");
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.payload->pos, std::optional<std::uint64_t>(18446744073709551615ull));
  EXPECT_EQ(r.payload->seq, 2u);
  EXPECT_EQ(r.payload->commit_us, 3u);
  EXPECT_EQ(r.payload->entries.size(), 1u);
}

TEST(NotifyPayload, PosRoundTripsAndIsCoveredByTheSignature) {
  NotifyPayload p = sample();
  p.pos = 4096;
  auto text = encode_payload(p, "appdb", "s3cret");
  EXPECT_EQ(text.rfind("pgc1 1732700000 7 1732700000123456 4096\n", 0), 0u);
  auto r = decode_payload(text, "appdb", "s3cret");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r.payload, p);
  std::string forged = text;
  forged.replace(forged.find(" 4096\n"), 6, " 9999");
  EXPECT_EQ(decode_payload(forged, "appdb", "s3cret").error, PayloadError::signature_mismatch);
}

TEST(NotifyPayload, EntryKinds) {
  auto r = signed_body("pgc1 5 6 7\nk a\np b*\nt table:public.t\nr ring overflow\n");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.payload->entries.size(), 4u);
  EXPECT_EQ(r.payload->entries[1].kind, EntryKind::pattern);
  EXPECT_EQ(r.payload->entries[3].kind, EntryKind::resync);
  EXPECT_EQ(r.payload->entries[3].text, "ring overflow");
  EXPECT_EQ(r.payload->epoch, 5u);
  EXPECT_EQ(r.payload->seq, 6u);
  EXPECT_EQ(r.payload->commit_us, 7u);
}

TEST(NotifyPayload, CachePolicyEntryCarriesARelationOid) {
  auto r = signed_body("pgc1 5 6 7\nc 16384\nt tbl:16384\nt all:16384\n");
  ASSERT_TRUE(r.ok()) << to_string(r.error) << ": " << r.detail;
  ASSERT_EQ(r.payload->entries.size(), 3u);
  EXPECT_EQ(r.payload->entries[0].kind, EntryKind::cache_policy);
  EXPECT_EQ(parse_relid(r.payload->entries[0].text), 16384u);
  EXPECT_EQ(r.payload->entries[1], (PayloadEntry{EntryKind::tag, "tbl:16384"}));
}

TEST(NotifyPayload, CachePolicyEntryRoundTrips) {
  NotifyPayload p = sample();
  p.entries.push_back({EntryKind::cache_policy, "4294967295"});
  auto text = encode_payload(p, "appdb", "s3cret");
  EXPECT_NE(text.find("\nc 4294967295\n"), std::string::npos);
  auto r = decode_payload(text, "appdb", "s3cret");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r.payload, p);
}

TEST(NotifyPayload, CachePolicyEntryThatIsNotAnOidIsMalformed) {
  for (const char* text :
       {"", "0", "012", "-1", "+5", "4294967296", "99999999999", "12a", " 12", "public.messages"}) {
    auto r = signed_body(std::string("pgc1 1 2 3\nc ") + text + "\n");
    EXPECT_EQ(r.error, PayloadError::bad_entry) << "c " << text;
  }
  EXPECT_EQ(signed_body("pgc1 1 2 3\nc\n").error, PayloadError::bad_entry);
  EXPECT_EQ(parse_relid("1"), 1u);
  EXPECT_EQ(parse_relid("4294967295"), 4294967295u);
  EXPECT_FALSE(parse_relid("4294967296"));
}

TEST(NotifyPayload, TrimSecret) {
  EXPECT_EQ(trim_secret("abc \n\t\r\n"), "abc");
  EXPECT_EQ(trim_secret(" a b"), " a b");
  EXPECT_EQ(trim_secret(""), "");
}

// ---- the extension's side: entry lines, signing, chunking under the NOTIFY limit

TEST(Lines, EscapeBackslashLfCr) {
  EXPECT_EQ(entry_line(EntryKind::key, "a\\b\nc\rd"), "k a\\\\b\\nc\\rd");
}

TEST(Hmac, KnownVector) {
  // RFC 4231 test case 2
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Hmac, KeyLongerThanABlockIsHashedFirst) {
  // RFC 4231 test case 6
  EXPECT_EQ(hmac_sha256_hex(std::string(131, '\xaa'),
                            "Test Using Larger Than Block-Size Key - Hash Key First"),
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
           static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
           msg.size(), digest, &len);
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
  for (int i = 0; i < 3000; ++i)
    owned.push_back("k item:" + std::to_string(i) + ":" + std::string(20, 'x'));
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
  for (int i = 0; i < 3000; ++i)
    owned.push_back("k item:" + std::to_string(i) + ":" + std::string(20, 'x'));
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
  for (int i = 0; i < 3000; ++i)
    owned.push_back("k item:" + std::to_string(i) + ":" + std::string(20, 'x'));
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
  EXPECT_EQ(
      payloads.back().rfind("pgc1 7 " + std::to_string(3 + payloads.size() - 1) + " 42 99999\n", 0),
      0u);
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

TEST(Payload, WhatTheExtensionChunksTheDaemonDecodesEntryForEntry) {
  std::vector<std::string> owned;
  for (int i = 0; i < 2000; ++i)
    owned.push_back(entry_line(i % 3 ? EntryKind::key : EntryKind::pattern,
                               "item:" + std::to_string(i) + ":\\*\n" + std::string(i % 50, 'x')));
  std::vector<std::string_view> lines(owned.begin(), owned.end());
  HmacSha256 signer("s3cret");
  PayloadParams p;
  p.dbname = "appdb";
  p.signer = &signer;
  p.epoch = 9;
  p.commit_us = 1234;
  p.pos = PayloadParams::Pos::range;
  p.pos_start = 5;
  p.pos_end = 77;
  std::uint64_t seq = 100;
  auto payloads = encode_payloads(lines, p, [&] { return seq++; });
  ASSERT_GT(payloads.size(), 1u);
  std::vector<std::string> decoded;
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    auto r = decode_payload(payloads[i], "appdb", signer);
    ASSERT_TRUE(r.ok()) << to_string(r.error) << ": " << r.detail;
    EXPECT_EQ(r.payload->epoch, 9u);
    EXPECT_EQ(r.payload->seq, 100 + i);
    EXPECT_EQ(r.payload->commit_us, 1234u);
    EXPECT_EQ(r.payload->pos, i + 1 == payloads.size() ? 77u : 5u);
    for (const auto& e : r.payload->entries) decoded.push_back(entry_line(e.kind, e.text));
  }
  EXPECT_EQ(decoded, owned);
}

TEST(QueryCacheTags, OnlyTheCachesOwnTagsCount) {
  EXPECT_TRUE(is_query_cache_tag("tbl:16384"));
  EXPECT_TRUE(is_query_cache_tag("row:16384:conversation_id=42"));
  EXPECT_TRUE(is_query_cache_tag("all:16384"));
  EXPECT_FALSE(is_query_cache_tag("table:public.messages"));  // a watched table's own tag
  EXPECT_FALSE(is_query_cache_tag("tbl"));
  EXPECT_FALSE(is_query_cache_tag(""));
}
