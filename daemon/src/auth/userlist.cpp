// The auth_file parser.
#include "auth/userlist.h"

#include <fstream>
#include <sstream>

#include "auth/scram.h"

namespace pgcohere::auth {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

[[noreturn]] void fail(std::string_view file, int line, const std::string& message) {
  throw UserlistError(std::string(file) + ":" + std::to_string(line) + ": " + message);
}

// Reads one quoted field at line[pos] (which is '"'), advancing pos past its closing quote.
std::string quoted_field(std::string_view line, std::size_t& pos, std::string_view file,
                         int lineno, const char* what) {
  std::string out;
  ++pos;
  for (;;) {
    if (pos >= line.size()) fail(file, lineno, std::string("unterminated quoted ") + what);
    char c = line[pos++];
    if (c == '"') {
      if (pos < line.size() && line[pos] == '"') {
        out += '"';
        ++pos;
        continue;
      }
      return out;
    }
    out += c;
  }
}

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  return true;
}

}  // namespace

SecretKind classify_secret(std::string_view secret) {
  if (secret.size() == 35 && secret.substr(0, 3) == "md5" && is_hex(secret.substr(3)))
    return SecretKind::md5;
  if (secret.substr(0, 14) == "SCRAM-SHA-256$") return SecretKind::scram;
  return SecretKind::plain;
}

const UserEntry* UserList::find(std::string_view name) const {
  auto it = users_.find(name);
  return it == users_.end() ? nullptr : &it->second;
}

void UserList::add(UserEntry entry) {
  std::string key = entry.name;
  users_.insert_or_assign(std::move(key), std::move(entry));
}

UserList parse_userlist(std::string_view text, std::string_view filename) {
  UserList list;
  int lineno = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    ++lineno;
    start = end + 1;

    std::size_t pos = 0;
    while (pos < line.size() && is_blank(line[pos])) ++pos;
    if (pos == line.size() || line[pos] == ';' || line[pos] == '#') {
      if (end == text.size()) break;
      continue;
    }
    if (line[pos] != '"') fail(filename, lineno, "expected a double-quoted user name");
    UserEntry entry;
    entry.line = lineno;
    entry.name = quoted_field(line, pos, filename, lineno, "user name");
    if (entry.name.empty()) fail(filename, lineno, "empty user name");
    if (entry.name.find('\0') != std::string::npos) fail(filename, lineno, "NUL in user name");
    if (pos < line.size() && !is_blank(line[pos]))
      fail(filename, lineno, "expected blank space after the user name");
    while (pos < line.size() && is_blank(line[pos])) ++pos;
    if (pos >= line.size() || line[pos] != '"')
      fail(filename, lineno, "expected a double-quoted password after user \"" + entry.name + "\"");
    entry.secret = quoted_field(line, pos, filename, lineno, "password");
    if (pos < line.size() && !is_blank(line[pos]))
      fail(filename, lineno, "expected blank space after the password");
    entry.kind = classify_secret(entry.secret);
    if (entry.kind == SecretKind::scram && !parse_scram_secret(entry.secret))
      fail(filename, lineno, "malformed SCRAM-SHA-256 secret for user \"" + entry.name + "\"");
    list.add(std::move(entry));
    if (end == text.size()) break;
  }
  return list;
}

UserList load_userlist(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserlistError(path + ":0: cannot open auth_file");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw UserlistError(path + ":0: cannot read auth_file");
  return parse_userlist(buf.str(), path);
}

}  // namespace pgcohere::auth
