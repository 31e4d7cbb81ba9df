// The effective configuration as an ini text (`pgcohered --check`): every key of every
// section, defaults included, with passwords masked, so an operator sees what the daemon
// will run with and can paste it into a ticket.
#pragma once

#include <string>

#include "config/config.h"

namespace pgcohere::config {

inline constexpr const char* kMasked = "********";

// [databases] and [users] entries as parsed (password=... masked), then [pgcohered],
// [redis], [invalidation] and [cache] in schema order. A setting list_settings() marks
// secret is masked; a Redis URL keeps its shape with only the password replaced.
std::string effective_config(const Config& config);

// "redis://user:secret@host:6379/0" -> "redis://user:********@host:6379/0"; a URL without
// a password is returned unchanged.
std::string mask_url_password(const std::string& url);

}  // namespace pgcohere::config
