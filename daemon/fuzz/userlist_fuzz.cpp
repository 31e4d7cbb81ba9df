// libFuzzer target: the auth_file parser must either parse or throw UserlistError.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "auth/userlist.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto list = pgcohere::auth::parse_userlist(text, "fuzz");
    for (const auto& [name, entry] : list.users())
      if (name.empty() || entry.line <= 0) __builtin_trap();
  } catch (const pgcohere::auth::UserlistError&) {
  }
  return 0;
}
