// Loading and reloading the auth_file.
#include "auth/auth_file.h"

#include "util/log.h"

namespace pgcohere::auth {

void AuthFile::load(const std::string& path) {
  auto list = std::make_shared<UserList>(path.empty() ? UserList() : load_userlist(path));
  path_ = path;
  users_ = std::move(list);
  if (!path.empty()) {
    PGC_LOG_INFO << "auth_file " << path << ": " << users_->size() << " user(s)";
  }
}

std::string AuthFile::reload(const std::string& path) {
  try {
    load(path);
    return "";
  } catch (const UserlistError& e) {
    PGC_LOG_ERROR << "auth_file not reloaded, keeping the previous one: " << e.what();
    return e.what();
  }
}

}  // namespace pgcohere::auth
