// auth_type = hba: PgBouncer's subset of PostgreSQL's pg_hba.conf (auth_hba_file), which
// picks the authentication method of a connection by its type, database, user and client
// address. Pure: parse_hba reads text (`@file` name lists through a callback), match_hba
// takes a plain description of the connection.
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::auth {

// PgBouncer's subset: the methods auth_type knows (password is its `plain`), plus peer
// and reject. ident, gss, sspi, pam, ldap, radius, cert and bsd are refused when parsed.
enum class HbaMethod { trust, reject, md5, scram_sha_256, password, peer };
const char* to_string(HbaMethod m);
// The auth_type that runs the client exchange for `m` ("trust", "md5", "scram-sha-256",
// "plain"); "" for reject and peer, which decide without an exchange.
std::string_view auth_type_for(HbaMethod m);

enum class HbaConnType { local, host, hostssl, hostnossl };

// A database or user field: `all`, `sameuser` (database field only) or names (from the
// line, or from `@file`).
struct HbaNames {
  bool all = false;
  bool sameuser = false;
  std::vector<std::string> names;
};

// A client address range: `all`, or an IPv4/IPv6 address with a mask.
struct HbaAddress {
  bool all = false;
  bool v6 = false;
  std::array<unsigned char, 16> addr{};
  std::array<unsigned char, 16> mask{};
};

struct HbaRule {
  HbaConnType type = HbaConnType::host;
  HbaNames databases;
  HbaNames users;
  HbaAddress address;  // not used by `local`
  HbaMethod method = HbaMethod::reject;
  int line = 0;
};

// what() is `file:line: message`.
class HbaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct HbaRules {
  std::string file;
  std::vector<HbaRule> rules;
};

// Reads the file an `@name` refers to (the path as written, relative paths resolved by the
// callback); nullopt when it cannot be read.
using HbaReadFile = std::function<std::optional<std::string>(const std::string& path)>;

// Lines as in pg_hba.conf: `#` comments, blank-separated fields, comma-separated lists,
// double quotes to take a keyword as a name. Anything outside the subset is an HbaError
// naming `filename:line`, never skipped.
HbaRules parse_hba(std::string_view text, std::string_view filename, const HbaReadFile& read_file = {});
// Reads and parses a file (`@file` relative to its directory); HbaError also when unreadable.
HbaRules load_hba(const std::string& path);

// What is known of a connection when its method is chosen.
struct HbaConnection {
  bool local = false;    // Unix socket
  bool tls = false;
  std::string address;   // the client's IP address as text, for TCP connections
  std::string database;
  std::string user;
};

// The first rule that matches, or nullptr: no rule, so the connection is rejected.
const HbaRule* match_hba(const HbaRules& rules, const HbaConnection& conn);

}  // namespace pgcohere::auth
