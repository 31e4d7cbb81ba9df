// PgBouncer's auth_file (userlist.txt): one `"user" "secret" ...` per line, where the secret
// is a plain password, an md5 hash (`md5` + 32 hex) or a SCRAM-SHA-256 secret.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pgcohere::auth {

enum class SecretKind { plain, md5, scram };

struct UserEntry {
  std::string name;
  std::string secret;  // never log it
  SecretKind kind = SecretKind::plain;
  int line = 0;
};

// what() is `file:line: message`.
class UserlistError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class UserList {
 public:
  const UserEntry* find(std::string_view name) const;
  std::size_t size() const { return users_.size(); }
  const std::map<std::string, UserEntry, std::less<>>& users() const { return users_; }
  // A later line for the same user replaces the earlier one, as in PgBouncer.
  void add(UserEntry entry);

 private:
  std::map<std::string, UserEntry, std::less<>> users_;
};

SecretKind classify_secret(std::string_view secret);

// Blank lines and lines whose first non-blank character is `;` or `#` are comments.
// Fields are double-quoted; `""` inside a field is one `"`; text after the second field is
// ignored. Anything else is an error naming `filename:line`.
UserList parse_userlist(std::string_view text, std::string_view filename = "auth_file");
// Reads and parses a file; UserlistError also when it cannot be read.
UserList load_userlist(const std::string& path);

}  // namespace pgcohere::auth
