// md5 password hashing and checking.
#include "auth/md5.h"

#include "auth/crypto.h"

namespace pgcohere::auth {

std::string md5_password_hash(std::string_view user, std::string_view password) {
  std::string input(password);
  input += user;
  return "md5" + md5_hex(input);
}

std::optional<std::string> md5_stored_hash(const UserEntry& entry) {
  switch (entry.kind) {
    case SecretKind::plain: return md5_password_hash(entry.name, entry.secret);
    case SecretKind::md5: {
      std::string lower = entry.secret;
      for (char& c : lower)
        if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
      return lower;
    }
    case SecretKind::scram: return std::nullopt;
  }
  return std::nullopt;
}

std::string md5_response(std::string_view stored_hash, std::string_view salt) {
  std::string input(stored_hash.substr(stored_hash.size() >= 3 ? 3 : 0));
  input += salt;
  return "md5" + md5_hex(input);
}

bool md5_verify(const UserEntry& entry, std::string_view salt, std::string_view response) {
  auto stored = md5_stored_hash(entry);
  if (!stored) return false;
  return constant_time_equal(md5_response(*stored, salt), response);
}

}  // namespace pgcohere::auth
