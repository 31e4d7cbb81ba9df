// PostgreSQL's md5 password method: stored "md5" + md5(password + user); on the wire the
// client answers "md5" + md5(stored_hex + 4-byte salt).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "auth/userlist.h"

namespace pgcohere::auth {

// "md5" + md5hex(password + user): what pg_authid and userlist.txt store.
std::string md5_password_hash(std::string_view user, std::string_view password);
// The stored md5 hash usable for `entry` (plain passwords are hashed; SCRAM secrets cannot be).
std::optional<std::string> md5_stored_hash(const UserEntry& entry);
// The wire response to AuthenticationMD5Password(salt), from a stored "md5..." hash.
// Used both to check a client and to log in to a server.
std::string md5_response(std::string_view stored_hash, std::string_view salt);
// Checks a client's PasswordMessage (without its NUL) against `entry` for `salt`.
bool md5_verify(const UserEntry& entry, std::string_view salt, std::string_view response);

}  // namespace pgcohere::auth
