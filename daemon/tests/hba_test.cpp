// auth_hba_file: PgBouncer's subset of pg_hba.conf parsed (anything else refused with
// file:line) and matched first rule first.
#include "auth/hba.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <unistd.h>

using namespace pgcohere::auth;

namespace {

std::string error_of(std::string_view text, const HbaReadFile& files = {}) {
  try {
    parse_hba(text, "hba.conf", files);
  } catch (const HbaError& e) {
    return e.what();
  }
  return "";
}

HbaConnection tcp(std::string address, std::string db, std::string user, bool tls = false) {
  HbaConnection c;
  c.address = std::move(address);
  c.database = std::move(db);
  c.user = std::move(user);
  c.tls = tls;
  return c;
}

// The method chosen for a connection, or "none".
std::string method_for(const HbaRules& rules, const HbaConnection& c) {
  const HbaRule* r = match_hba(rules, c);
  return r ? to_string(r->method) : "none";
}

}  // namespace

TEST(Hba, ParsesEverySupportedFieldForm) {
  auto rules = parse_hba(
      "# comment\n"
      "\n"
      "local   all        all                      peer\n"
      "host    app,\"all\"  alice, bob  10.0.0.0/8      md5   # trailing comment\n"
      "hostssl sameuser   all         ::1/128         scram-sha-256\n"
      "hostnossl all      all         192.168.1.0 255.255.255.0  password\n"
      "host    all        all         all             reject\n"
      "host    all        all         127.0.0.1/32    trust\r\n",
      "hba.conf");
  ASSERT_EQ(rules.rules.size(), 6u);
  EXPECT_EQ(rules.rules[0].type, HbaConnType::local);
  EXPECT_EQ(rules.rules[0].method, HbaMethod::peer);
  EXPECT_EQ(rules.rules[0].line, 3);
  const HbaRule& r = rules.rules[1];
  EXPECT_FALSE(r.databases.all);  // "all" in quotes is a database named all
  EXPECT_EQ(r.databases.names, (std::vector<std::string>{"app", "all"}));
  EXPECT_EQ(r.users.names, (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(r.method, HbaMethod::md5);
  EXPECT_TRUE(rules.rules[2].databases.sameuser);
  EXPECT_TRUE(rules.rules[2].address.v6);
  EXPECT_EQ(rules.rules[3].method, HbaMethod::password);
  EXPECT_TRUE(rules.rules[4].address.all);
  EXPECT_EQ(rules.rules[5].line, 8);
}

TEST(Hba, TheFirstMatchingRuleDecides) {
  auto rules = parse_hba(
      "host app   alice 127.0.0.1/32  reject\n"
      "host app   all   127.0.0.0/8   scram-sha-256\n"
      "host all   all   10.1.0.0 255.255.0.0  md5\n"
      "host sameuser all ::1/128 trust\n",
      "hba.conf");
  EXPECT_EQ(method_for(rules, tcp("127.0.0.1", "app", "alice")), "reject");
  EXPECT_EQ(method_for(rules, tcp("127.0.0.1", "app", "bob")), "scram-sha-256");
  EXPECT_EQ(method_for(rules, tcp("127.0.0.2", "app", "alice")), "scram-sha-256");
  EXPECT_EQ(method_for(rules, tcp("10.1.200.7", "other", "carol")), "md5");
  EXPECT_EQ(method_for(rules, tcp("10.2.0.1", "other", "carol")), "none");
  EXPECT_EQ(method_for(rules, tcp("::1", "carol", "carol")), "trust");
  EXPECT_EQ(method_for(rules, tcp("::1", "app", "carol")), "none");
  // An IPv4 client seen through an IPv6 socket matches IPv4 rules.
  EXPECT_EQ(method_for(rules, tcp("::ffff:127.0.0.1", "app", "bob")), "scram-sha-256");
}

TEST(Hba, ConnectionTypesMatchOnlyTheirConnections) {
  auto rules = parse_hba(
      "local     all all            trust\n"
      "hostssl   all all all        scram-sha-256\n"
      "hostnossl all all all        md5\n",
      "hba.conf");
  HbaConnection local;
  local.local = true;
  local.database = "app";
  local.user = "alice";
  EXPECT_EQ(method_for(rules, local), "trust");
  EXPECT_EQ(method_for(rules, tcp("127.0.0.1", "app", "alice", true)), "scram-sha-256");
  EXPECT_EQ(method_for(rules, tcp("127.0.0.1", "app", "alice", false)), "md5");
  auto host_only = parse_hba("host all all 0.0.0.0/0 trust\n", "hba.conf");
  EXPECT_EQ(method_for(host_only, local), "none");
  EXPECT_EQ(method_for(host_only, tcp("127.0.0.1", "app", "alice", true)), "trust");
}

TEST(Hba, NamesComeFromAtFilesRelativeToTheCaller) {
  std::map<std::string, std::string> files = {{"users.txt", "alice, bob\n# comment\n\"carol\"  dave\n"},
                                              {"dbs.txt", "app\n"}};
  auto read = [&](const std::string& p) -> std::optional<std::string> {
    auto it = files.find(p);
    if (it == files.end()) return std::nullopt;
    return it->second;
  };
  auto rules = parse_hba("host @dbs.txt @users.txt 0.0.0.0/0 md5\n", "hba.conf", read);
  EXPECT_EQ(rules.rules[0].users.names, (std::vector<std::string>{"alice", "bob", "carol", "dave"}));
  EXPECT_EQ(method_for(rules, tcp("1.2.3.4", "app", "dave")), "md5");
  EXPECT_EQ(method_for(rules, tcp("1.2.3.4", "app", "erin")), "none");
  EXPECT_EQ(error_of("host all @missing.txt 0.0.0.0/0 md5\n", read),
            "hba.conf:1: cannot read the name list file \"missing.txt\"");
  files["nested.txt"] = "@users.txt\n";
  EXPECT_NE(error_of("host all @nested.txt 0.0.0.0/0 md5\n", read).find("hba.conf:1: "), std::string::npos);
}

TEST(Hba, WhatIsOutsideTheSubsetIsAnErrorWithFileAndLine) {
  EXPECT_EQ(error_of("host all all 0.0.0.0/0 md5\nhostgssenc all all 0.0.0.0/0 md5\n"),
            "hba.conf:2: connection type \"hostgssenc\" is not supported (local, host, hostssl, hostnossl)");
  EXPECT_EQ(error_of("host replication all 0.0.0.0/0 md5\n"),
            "hba.conf:1: database keyword \"replication\" is not supported (all, sameuser, names, @file)");
  EXPECT_EQ(error_of("host samerole all 0.0.0.0/0 md5\n").substr(0, 12), "hba.conf:1: ");
  EXPECT_EQ(error_of("host all +admins 0.0.0.0/0 md5\n"),
            "hba.conf:1: group membership (\"+admins\") is not supported (all, names, @file)");
  EXPECT_EQ(error_of("host all all db.example.com md5\n"),
            "hba.conf:1: invalid IP address \"db.example.com\": host names and domain suffixes are not supported, "
            "write an address with a mask");
  EXPECT_EQ(error_of("host all all samenet md5\n"),
            "hba.conf:1: address keyword \"samenet\" is not supported (all, IPv4 or IPv6 addresses)");
  EXPECT_EQ(error_of("host all all 10.0.0.0/33 md5\n"),
            "hba.conf:1: invalid CIDR mask in address \"10.0.0.0/33\" (0 to 32)");
  EXPECT_EQ(error_of("host all all 10.0.0.0 md5\n"),
            "hba.conf:1: invalid IP mask \"md5\" for address \"10.0.0.0\"");
  EXPECT_EQ(error_of("host all all 10.0.0.0/8 ldap\n"),
            "hba.conf:1: authentication method \"ldap\" is not supported (trust, reject, md5, scram-sha-256, "
            "password, peer)");
  EXPECT_EQ(error_of("host all all 10.0.0.0/8 cert\n").substr(0, 38), "hba.conf:1: authentication method \"cer");
  EXPECT_EQ(error_of("local all all peer map=omicron\n"),
            "hba.conf:1: authentication options are not supported (\"map=omicron\")");
  EXPECT_EQ(error_of("host all all 10.0.0.0/8 peer\n"),
            "hba.conf:1: peer authentication is only supported on local (Unix socket) connections");
  EXPECT_EQ(error_of("host all all 10.0.0.0/8\n"),
            "hba.conf:1: too few fields: expected TYPE DATABASE USER ADDRESS METHOD");
  EXPECT_EQ(error_of("host all all 10.0.0.0 255.0.0.0\n"), "hba.conf:1: missing the authentication method");
  EXPECT_EQ(error_of("local all all\n"), "hba.conf:1: too few fields: expected local DATABASE USER METHOD");
  EXPECT_EQ(error_of("host all,,x all 0.0.0.0/0 md5\n"), "hba.conf:1: empty element in a comma-separated list");
  EXPECT_EQ(error_of("host \"all all 0.0.0.0/0 md5\n"), "hba.conf:1: unterminated quoted string");
  EXPECT_EQ(error_of("include other.conf\n"),
            "hba.conf:1: connection type \"include\" is not supported (local, host, hostssl, hostnossl)");
  EXPECT_EQ(error_of("\n\n  host all all ::1 md5\n").substr(0, 12), "hba.conf:3: ");
}

TEST(Hba, LoadHbaReadsAtFilesBesideTheFile) {
  char dir_template[] = "/tmp/hba-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  std::string dir = dir_template;
  std::ofstream(dir + "/users") << "alice\n";
  std::ofstream(dir + "/pg_hba.conf") << "host all @users 127.0.0.1/32 md5\n";
  auto rules = load_hba(dir + "/pg_hba.conf");
  EXPECT_EQ(method_for(rules, tcp("127.0.0.1", "x", "alice")), "md5");
  try {
    load_hba(dir + "/absent.conf");
    ADD_FAILURE() << "no error";
  } catch (const HbaError& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/absent.conf:0: cannot read auth_hba_file");
  }
  std::remove((dir + "/users").c_str());
  std::remove((dir + "/pg_hba.conf").c_str());
  rmdir(dir.c_str());
}

TEST(Hba, EachMethodRunsTheClientExchangeOfItsAuthType) {
  EXPECT_EQ(auth_type_for(HbaMethod::password), "plain");
  EXPECT_EQ(auth_type_for(HbaMethod::scram_sha_256), "scram-sha-256");
  EXPECT_EQ(auth_type_for(HbaMethod::md5), "md5");
  EXPECT_EQ(auth_type_for(HbaMethod::trust), "trust");
  EXPECT_EQ(auth_type_for(HbaMethod::reject), "");
}
