// The PgBouncer auth_file parser.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "auth/auth_file.h"
#include "auth/userlist.h"

using namespace pgcohere::auth;

namespace {

std::string error_of(std::string_view text) {
  try {
    parse_userlist(text, "userlist.txt");
  } catch (const UserlistError& e) {
    return e.what();
  }
  return "";
}

const char* kScram =
    "SCRAM-SHA-256$4096:39Uo3dhfoRqcZuwdOYYEfA==$fbOM6icxrrFrD2qeCVctvhJUPJmayPNGEnHeAe1dhJA=:"
    "4PzbjXW4yZAHhFVhPXBHV6louikr9xrUwKJriIYgSTU=";

}  // namespace

TEST(Userlist, ParsesPgBouncerFormat) {
  std::string text = std::string(
      "; comment\n"
      "# another comment\n"
      "\n"
      "\"admin\" \"md545f2603610af569b6155c45067268c6b\"\n"
      "  \"plain\"\t\"s3cr\"\"et with spaces\" extra fields are ignored\r\n"
      "\"alice\" \"") + kScram + "\"\n"
      "\"we\"\"ird\" \"\"\n";
  UserList list = parse_userlist(text);
  ASSERT_EQ(list.size(), 4u);
  const UserEntry* admin = list.find("admin");
  ASSERT_TRUE(admin);
  EXPECT_EQ(admin->kind, SecretKind::md5);
  EXPECT_EQ(admin->line, 4);
  const UserEntry* plain = list.find("plain");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->secret, "s3cr\"et with spaces");
  EXPECT_EQ(plain->kind, SecretKind::plain);
  EXPECT_EQ(list.find("alice")->kind, SecretKind::scram);
  ASSERT_TRUE(list.find("we\"ird"));
  EXPECT_EQ(list.find("we\"ird")->secret, "");
  EXPECT_FALSE(list.find("nobody"));
}

TEST(Userlist, LastLineWithoutNewlineAndLaterDuplicateWins) {
  UserList list = parse_userlist("\"u\" \"one\"\n\"u\" \"two\"");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list.find("u")->secret, "two");
  EXPECT_EQ(list.find("u")->line, 2);
  EXPECT_EQ(parse_userlist("").size(), 0u);
}

TEST(Userlist, ClassifiesSecrets) {
  EXPECT_EQ(classify_secret("md5" + std::string(32, 'a')), SecretKind::md5);
  EXPECT_EQ(classify_secret("md5" + std::string(31, 'a')), SecretKind::plain);
  EXPECT_EQ(classify_secret("md5" + std::string(32, 'g')), SecretKind::plain);
  EXPECT_EQ(classify_secret(kScram), SecretKind::scram);
  EXPECT_EQ(classify_secret("hello"), SecretKind::plain);
}

TEST(Userlist, ErrorsNameFileAndLine) {
  EXPECT_EQ(error_of("\"a\" \"b\"\nbob secret\n"),
            "userlist.txt:2: expected a double-quoted user name");
  EXPECT_EQ(error_of("\"a\" \"b\"\n\n\"c\"\n"),
            "userlist.txt:3: expected a double-quoted password after user \"c\"");
  EXPECT_EQ(error_of("\"a\" \"b\n"), "userlist.txt:1: unterminated quoted password");
  EXPECT_EQ(error_of("\"a\n"), "userlist.txt:1: unterminated quoted user name");
  EXPECT_EQ(error_of("\"\" \"b\"\n"), "userlist.txt:1: empty user name");
  EXPECT_EQ(error_of("\"a\"\"b\"x \"c\"\n"), "userlist.txt:1: expected blank space after the user name");
  EXPECT_EQ(error_of("\"a\" \"b\"x\n"), "userlist.txt:1: expected blank space after the password");
  EXPECT_EQ(error_of("\"a\" \"SCRAM-SHA-256$4096:zz$yy:xx\"\n"),
            "userlist.txt:1: malformed SCRAM-SHA-256 secret for user \"a\"");
}

TEST(Userlist, ErrorsNeverContainThePassword) {
  std::string e = error_of("\"a\" \"topsecret\"x\n");
  EXPECT_FALSE(e.empty());
  EXPECT_EQ(e.find("topsecret"), std::string::npos);
}

TEST(Userlist, LoadsFromFile) {
  char path[] = "/tmp/pgcohere-userlist-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "\"f\" \"g\"\n";
  }
  EXPECT_EQ(load_userlist(path).find("f")->secret, "g");
  std::remove(path);
  try {
    load_userlist(path);
    FAIL() << "missing file accepted";
  } catch (const UserlistError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
}

TEST(AuthFile, ReloadKeepsTheOldListWhenTheNewFileIsBroken) {
  char path[] = "/tmp/pgcohere-authfile-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  auto write = [&](const char* text) {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  };
  write("\"a\" \"1\"\n");
  AuthFile f;
  f.load(path);
  auto before = f.users();
  EXPECT_EQ(before->find("a")->secret, "1");

  write("\"a\" \"2\"\n\"b\" \"3\"\n");
  EXPECT_EQ(f.reload(path), "");
  EXPECT_EQ(f.users()->find("a")->secret, "2");
  EXPECT_EQ(f.users()->size(), 2u);
  EXPECT_EQ(before->find("a")->secret, "1");  // a login in progress keeps its snapshot

  write("\"a\" \"4\"\nbroken\n");
  std::string err = f.reload(path);
  EXPECT_EQ(err, std::string(path) + ":2: expected a double-quoted user name");
  EXPECT_EQ(f.users()->find("a")->secret, "2");

  std::remove(path);
  EXPECT_THROW(f.load(path), UserlistError);
  EXPECT_EQ(f.users()->size(), 2u);
  f.load("");
  EXPECT_EQ(f.users()->size(), 0u);
}
