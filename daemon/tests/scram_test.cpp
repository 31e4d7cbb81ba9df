// SCRAM-SHA-256: RFC 7677 vectors, secrets computed by PostgreSQL 15, and an exchange
// captured between libpq (psql) and PostgreSQL 15, replayed against both our sides.
#include <gtest/gtest.h>

#include "auth/crypto.h"
#include "auth/scram.h"

using namespace pgcohere::auth;

namespace {

std::string b64(std::string_view s) { return *base64_decode(s); }

}  // namespace

TEST(ScramCrypto, Base64RoundTripAndStrictness) {
  const std::vector<std::string> samples = {"", "a", "ab", "abc", "abcd", std::string("\xff\x00\x01", 3)};
  for (const std::string& s : samples) {
    EXPECT_EQ(*base64_decode(base64_encode(s)), s);
  }
  EXPECT_EQ(base64_encode("n,,"), "biws");
  EXPECT_FALSE(base64_decode("abc"));     // length
  EXPECT_FALSE(base64_decode("ab=c"));    // padding in the middle
  EXPECT_FALSE(base64_decode("ab!d"));    // alphabet
  EXPECT_FALSE(base64_decode("YR=="));    // non-zero pad bits
}

// Secrets from SELECT rolpassword FROM pg_authid (PostgreSQL 15.20, scram-sha-256).
TEST(ScramSecret, MatchesPostgresForAsciiPasswords) {
  const std::pair<const char*, const char*> cases[] = {
      {"pencil",
       "SCRAM-SHA-256$4096:39Uo3dhfoRqcZuwdOYYEfA==$fbOM6icxrrFrD2qeCVctvhJUPJmayPNGEnHeAe1dhJA=:"
       "4PzbjXW4yZAHhFVhPXBHV6louikr9xrUwKJriIYgSTU="},
      {"p@ss \"w,rd=",
       "SCRAM-SHA-256$4096:e03LQ4lHYm0WDZIMXdIIAg==$eOyso1R/1mr09nHea8vYAAppBnQuu2x6kJhCgDoo8jU=:"
       "sl3rx+bJy9J+NGW97rrR1ZP1UXoOx6qtrSArCkdFB/s="},
      // '\x01' is prohibited by SASLprep: PostgreSQL then uses the raw bytes.
      {"\x01" "ctl",
       "SCRAM-SHA-256$4096:0zEkfzyCEHyX31eDySONig==$4QEfuqVI8aZWGe+t1ItkZuooTFZG1GJQp5ewsVBdAgo=:"
       "ts5wedLRv3MCmeOEy+x/sRiLKo+4QCz6RIxsDlsJTdA="},
  };
  for (auto [password, secret] : cases) {
    auto parsed = parse_scram_secret(secret);
    ASSERT_TRUE(parsed) << secret;
    EXPECT_EQ(format_scram_secret(*parsed), secret);
    EXPECT_EQ(format_scram_secret(scram_secret_from_password(password, parsed->salt, 4096)), secret);
  }
}

TEST(ScramSecret, MatchesPostgresForNonAsciiPasswords) {
  // 'pässwörd' (NFC, unchanged by SASLprep)
  auto carol = *parse_scram_secret(
      "SCRAM-SHA-256$4096:PtfQBT4Dxi3JEXv26Xln1A==$U2igWyOEtsfAHBcUJ+ZF7zR2CI7FO7lwl683T+lX7DU=:"
      "CjCOWpkmuHMUXwqvPMGufp5OVsPEGhj25h/OItO9aMM=");
  EXPECT_EQ(scram_secret_from_password("p\xc3\xa4ssw\xc3\xb6rd", carol.salt).stored_key,
            carol.stored_key);
  // soft hyphen U+00AD maps to nothing, NO-BREAK SPACE U+00A0 maps to ' '
  auto erin = *parse_scram_secret(
      "SCRAM-SHA-256$4096:oqiCLCe3k8CNMSe7VjE2QQ==$f6S0ohsfR5My7l3lWLHKM9Dvb+uknKkI5gUXQHfKHZA=:"
      "iRDntjIQXgTw+yw2rY63D344SzE2f2COoIL7A8BWUIY=");
  EXPECT_EQ(saslprep("soft\xc2\xadhy\xc2\xa0phen"), "softhy phen");
  EXPECT_EQ(scram_secret_from_password("soft\xc2\xadhy\xc2\xa0phen", erin.salt).server_key,
            erin.server_key);
  EXPECT_EQ(saslprep("bad\xff utf8"), "bad\xff utf8");
}

TEST(ScramSecret, RejectsMalformedSecrets) {
  EXPECT_FALSE(parse_scram_secret("SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA"));  // short keys
  EXPECT_FALSE(parse_scram_secret("SCRAM-SHA-256$0:c2FsdA==$" + std::string(44, 'A') + ":" +
                                  std::string(44, 'A')));
  EXPECT_FALSE(parse_scram_secret("SCRAM-SHA-256$x:c2FsdA==$a:b"));
  EXPECT_FALSE(parse_scram_secret("SCRAM-SHA-1$4096:c2FsdA==$a:b"));
  EXPECT_FALSE(parse_scram_secret("SCRAM-SHA-256$4096"));
}

// RFC 7677 section 3.
TEST(ScramServer, Rfc7677Vector) {
  ScramServer server(scram_secret_from_password("pencil", b64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096),
                     "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  auto first = server.client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_EQ(first.message,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  auto fin = server.client_final(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  ASSERT_TRUE(fin.ok()) << fin.error;
  EXPECT_EQ(fin.message, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  EXPECT_TRUE(server.authenticated());
  EXPECT_EQ(server.client_key().size(), 32u);
}

TEST(ScramClient, Rfc7677Vector) {
  auto client = ScramClient::with_password("pencil", "rOprNGfwEbeRWgbNEkqO");
  EXPECT_EQ(client.client_first("user"), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  auto fin = client.server_first(
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  ASSERT_TRUE(fin.ok()) << fin.error;
  EXPECT_EQ(fin.message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  EXPECT_TRUE(client.server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").ok());
  EXPECT_TRUE(client.done());
}

// Captured on loopback: psql (libpq 15) logging in as alice/pencil to PostgreSQL 15.20.
namespace captured {
const char* kSecret = "SCRAM-SHA-256$4096:39Uo3dhfoRqcZuwdOYYEfA==$fbOM6icxrrFrD2qeCVctvhJUPJmayPNGEnHeAe1dhJA=:"
                      "4PzbjXW4yZAHhFVhPXBHV6louikr9xrUwKJriIYgSTU=";
const char* kClientFirst = "n,,n=,r=5+MkmToLfBSTBQu9QUVSsuNc";
const char* kServerNonce = "+hSY8oyc49m+phUgI1CfNjlo";
const char* kServerFirst = "r=5+MkmToLfBSTBQu9QUVSsuNc+hSY8oyc49m+phUgI1CfNjlo,s=39Uo3dhfoRqcZuwdOYYEfA==,i=4096";
const char* kClientFinal = "c=biws,r=5+MkmToLfBSTBQu9QUVSsuNc+hSY8oyc49m+phUgI1CfNjlo,"
                           "p=i5j4eyX5rTlw22gHDLnTEqUNw2FbLXdUkM//aEy/3DQ=";
const char* kServerFinal = "v=Lw3I4Q6qwgB/17KLfyGUavgr1fOGL2HhV34RTGWhFI8=";
}  // namespace captured

TEST(ScramServer, AnswersLibpqExactlyAsPostgresDid) {
  ScramServer server(*parse_scram_secret(captured::kSecret), captured::kServerNonce);
  auto first = server.client_first(captured::kClientFirst);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.message, captured::kServerFirst);
  auto fin = server.client_final(captured::kClientFinal);
  ASSERT_TRUE(fin.ok()) << fin.error;
  EXPECT_EQ(fin.message, captured::kServerFinal);
}

TEST(ScramClient, SpeaksToPostgresExactlyAsLibpqDid) {
  auto client = ScramClient::with_password("pencil", "5+MkmToLfBSTBQu9QUVSsuNc");
  EXPECT_EQ(client.client_first(), captured::kClientFirst);
  auto fin = client.server_first(captured::kServerFirst);
  ASSERT_TRUE(fin.ok()) << fin.error;
  EXPECT_EQ(fin.message, captured::kClientFinal);
  EXPECT_TRUE(client.server_final(captured::kServerFinal).ok());
}

TEST(ScramClient, LogsInWithRecoveredClientKeyLikePgBouncer) {
  ScramSecret secret = *parse_scram_secret(captured::kSecret);
  // A client logs in to the pooler; the pooler keeps its ClientKey...
  ScramServer front(secret);
  auto client = ScramClient::with_password("pencil");
  auto sf = front.client_first(client.client_first());
  auto cf = client.server_first(sf.message);
  auto done = front.client_final(cf.message);
  ASSERT_TRUE(done.ok()) << done.error;
  EXPECT_TRUE(client.server_final(done.message).ok());
  // ...and reproduces libpq's proof for the captured server exchange with it.
  auto pooler = ScramClient::with_keys(secret, front.client_key(), "5+MkmToLfBSTBQu9QUVSsuNc");
  pooler.client_first();
  auto fin = pooler.server_first(captured::kServerFirst);
  ASSERT_TRUE(fin.ok()) << fin.error;
  EXPECT_EQ(fin.message, captured::kClientFinal);
  EXPECT_TRUE(pooler.server_final(captured::kServerFinal).ok());
}

TEST(ScramClient, WithKeysRefusesAServerWithAnotherSalt) {
  ScramSecret secret = *parse_scram_secret(captured::kSecret);
  auto pooler = ScramClient::with_keys(secret, std::string(32, 'k'), "abc");
  pooler.client_first();
  auto r = pooler.server_first("r=abcdef,s=c2FsdHNhbHQ=,i=4096");
  EXPECT_FALSE(r.ok());
}

TEST(ScramClient, RejectsForgedServerSignatureAndBadNonce) {
  auto client = ScramClient::with_password("pencil", "5+MkmToLfBSTBQu9QUVSsuNc");
  client.client_first();
  ASSERT_TRUE(client.server_first(captured::kServerFirst).ok());
  EXPECT_FALSE(client.server_final("v=" + base64_encode(std::string(32, 'x'))).ok());
  EXPECT_FALSE(client.done());

  auto c2 = ScramClient::with_password("pencil", "mynonce");
  c2.client_first();
  EXPECT_FALSE(c2.server_first("r=othernonce,s=c2FsdA==,i=4096").ok());
  auto c3 = ScramClient::with_password("pencil", "mynonce");
  c3.client_first();
  EXPECT_FALSE(c3.server_first("r=mynonce,s=c2FsdA==,i=4096").ok());  // no server part
  auto c4 = ScramClient::with_password("pencil", "mynonce");
  c4.client_first();
  auto e = c4.server_first("e=other-error");
  EXPECT_FALSE(e.ok());
}

TEST(ScramServer, WrongPasswordFails) {
  ScramServer server(*parse_scram_secret(captured::kSecret));
  auto client = ScramClient::with_password("pencils");
  auto sf = server.client_first(client.client_first());
  ASSERT_TRUE(sf.ok());
  auto r = server.client_final(client.server_first(sf.message).message);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(server.authenticated());
  EXPECT_TRUE(server.client_key().empty());
}

TEST(ScramServer, PlainPasswordEntryWorks) {
  UserEntry e{"u", "hunter2", SecretKind::plain, 1};
  auto secret = scram_secret_for(e);
  ASSERT_TRUE(secret);
  ScramServer server(*secret);
  auto client = ScramClient::with_password("hunter2");
  auto sf = server.client_first(client.client_first());
  auto r = server.client_final(client.server_first(sf.message).message);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(client.server_final(r.message).ok());
  EXPECT_FALSE(scram_secret_for(UserEntry{"u", "md5" + std::string(32, 'a'), SecretKind::md5, 1}));
}

TEST(ScramServer, UnknownUserLooksNormalThenFails) {
  auto a = ScramServer::for_unknown_user("nobody");
  auto b = ScramServer::for_unknown_user("nobody");
  auto client = ScramClient::with_password("x", "cn");
  auto sa = a.client_first(client.client_first());
  ASSERT_TRUE(sa.ok());
  auto sb = b.client_first("n,,n=,r=cn");
  // Same salt for the same name on every attempt.
  EXPECT_EQ(sa.message.substr(sa.message.find(",s=")), sb.message.substr(sb.message.find(",s=")));
  EXPECT_FALSE(a.client_final(client.server_first(sa.message).message).ok());
}

TEST(ScramServer, RejectsProtocolViolations) {
  auto secret = *parse_scram_secret(captured::kSecret);
  auto fails_first = [&](const char* msg) {
    ScramServer s(secret);
    return !s.client_first(msg).ok();
  };
  EXPECT_TRUE(fails_first("p=tls-server-end-point,,n=,r=abc"));  // channel binding required
  EXPECT_TRUE(fails_first("n,a=admin,n=,r=abc"));                 // authzid
  EXPECT_TRUE(fails_first("n,,m=ext,n=,r=abc"));
  EXPECT_TRUE(fails_first("n,,n=,r="));
  EXPECT_TRUE(fails_first("n,,n=,r=a b"));
  EXPECT_TRUE(fails_first("x,,n=,r=abc"));
  EXPECT_TRUE(fails_first(""));
  EXPECT_TRUE(fails_first("n,,n=bad=name,r=abc"));

  // The final message must repeat the GS2 header and the combined nonce.
  ScramServer s(secret, "SRV");
  ASSERT_TRUE(s.client_first("y,,n=,r=CLI").ok());
  EXPECT_FALSE(s.client_final("c=biws,r=CLISRV,p=" + base64_encode(std::string(32, 'p'))).ok());
  ScramServer t(secret, "SRV");
  ASSERT_TRUE(t.client_first("n,,n=,r=CLI").ok());
  EXPECT_FALSE(t.client_final("c=biws,r=CLIXXX,p=" + base64_encode(std::string(32, 'p'))).ok());
  // Out of order.
  ScramServer u(secret);
  EXPECT_FALSE(u.client_final("c=biws,r=x,p=" + base64_encode(std::string(32, 'p'))).ok());
}

TEST(ScramParse, ClientFirstFields) {
  auto p = parse_client_first("n,,n=a=2Cb=3Dc,r=nonce,x=ext");
  ASSERT_TRUE(p) << p.error;
  EXPECT_EQ(p->gs2_header, "n,,");
  EXPECT_EQ(p->username, "a,b=c");
  EXPECT_EQ(p->nonce, "nonce");
  EXPECT_EQ(p->bare, "n=a=2Cb=3Dc,r=nonce,x=ext");
  EXPECT_TRUE(parse_server_final("e=invalid-proof")->error == "invalid-proof");
}
