// The client's own cache switch: `SET pgcohere.cache_bypass = on|off` and
// `RESET pgcohere.cache_bypass`, sent as one simple Query between transactions. The pooler
// answers it itself (PostgreSQL reserves the pgcohere.* names for the extension's settings).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pgcohere::cache {

struct SessionSwitch {
  bool bypass = false;
  std::string command_tag;  // "SET" or "RESET"
  std::size_t consumed = 0;  // bytes of the Query message
};

// `data`: the client's unread bytes, starting with a message. nullopt unless it is one
// complete Query that sets or resets pgcohere.cache_bypass (decided from the parse tree).
std::optional<SessionSwitch> session_switch(std::string_view data);

// The cheap test before it: whether a statement's text starts with SET or RESET.
bool starts_like_set(std::string_view sql);

}  // namespace pgcohere::cache
