// The NOTIFY payload codec: grammar, escaping, signature binding to the database.
#include "invalidation/notify_payload.h"

#include <gtest/gtest.h>

using namespace pgcohere::invalidation;

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
  EXPECT_EQ(decode_payload(text + "\n", "appdb", "s3cret").error,
            PayloadError::bad_signature_line);
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
  for (const char* text : {"", "0", "012", "-1", "+5", "4294967296", "99999999999", "12a", " 12",
                           "public.messages"}) {
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
