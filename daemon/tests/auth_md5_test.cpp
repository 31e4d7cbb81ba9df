// md5 password checks, with an exchange captured between psql and PostgreSQL 15.
#include <gtest/gtest.h>

#include "auth/md5.h"

using namespace pgcohere::auth;

namespace {
// role dave, password 'secret1', password_encryption=md5 (pg_authid), and the salt and
// PasswordMessage of a psql login.
const char* kStored = "md58b4629c655965ca7d17c5d830b5d6fa2";
const std::string kSalt("\x18\x50\x13\x2b", 4);
const char* kResponse = "md5aae9b6dab11d73695cc6ac9f8baab01c";
}  // namespace

TEST(Md5, HashMatchesPostgresAndPgBouncerDocs) {
  EXPECT_EQ(md5_password_hash("dave", "secret1"), kStored);
  EXPECT_EQ(md5_password_hash("admin", "1234"), "md545f2603610af569b6155c45067268c6b");
}

TEST(Md5, ResponseMatchesLibpq) { EXPECT_EQ(md5_response(kStored, kSalt), kResponse); }

TEST(Md5, VerifyFromPlainAndHashedEntries) {
  UserEntry plain{"dave", "secret1", SecretKind::plain, 1};
  UserEntry hashed{"dave", "MD58B4629C655965CA7D17C5D830B5D6FA2", SecretKind::md5, 1};
  hashed.secret = "md5" + std::string("8B4629C655965CA7D17C5D830B5D6FA2");
  EXPECT_TRUE(md5_verify(plain, kSalt, kResponse));
  EXPECT_TRUE(md5_verify(hashed, kSalt, kResponse));
  EXPECT_FALSE(md5_verify(plain, std::string("\0\0\0\0", 4), kResponse));
  EXPECT_FALSE(md5_verify(UserEntry{"dave", "secret2", SecretKind::plain, 1}, kSalt, kResponse));
  EXPECT_FALSE(md5_verify(UserEntry{"eve", "secret1", SecretKind::plain, 1}, kSalt, kResponse));
  EXPECT_FALSE(md5_verify(UserEntry{"dave", "SCRAM-SHA-256$x", SecretKind::scram, 1}, kSalt, kResponse));
  EXPECT_FALSE(md5_stored_hash(UserEntry{"dave", "SCRAM-SHA-256$x", SecretKind::scram, 1}));
}
