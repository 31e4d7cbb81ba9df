// The auth_file as the pooler holds it: loaded at start, re-read on reload, and kept as
// it was when the new file is broken (like the rest of the configuration).
#pragma once

#include <memory>
#include <string>

#include "auth/userlist.h"

namespace pgcohere::auth {

class AuthFile {
 public:
  // Reads `path` ("" = no auth_file: an empty list). Throws UserlistError on the first
  // load, so that start-up fails with file:line.
  void load(const std::string& path);
  // For SIGHUP / RELOAD: re-reads the file (also when only its contents changed). On error
  // the previous list stays in force and the error (file:line: reason) is returned; "" on
  // success.
  std::string reload(const std::string& path);

  // The current list; callers may keep the pointer while a login is in progress.
  std::shared_ptr<const UserList> users() const { return users_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::shared_ptr<const UserList> users_ = std::make_shared<UserList>();
};

}  // namespace pgcohere::auth
