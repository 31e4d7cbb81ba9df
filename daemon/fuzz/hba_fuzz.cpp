// libFuzzer target: the auth_hba_file parser must either parse or throw HbaError, and every
// rule it returns must be matchable.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "auth/hba.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // @file names read as a fixed list, so that the name-list path is fuzzed too.
  auto read = [](const std::string& path) -> std::optional<std::string> {
    if (path == "users") return std::string("alice, \"bob\"\n# c\ncarol");
    return std::nullopt;
  };
  try {
    auto rules = pgcohere::auth::parse_hba(text, "fuzz", read);
    for (const auto& r : rules.rules)
      if (r.line <= 0) __builtin_trap();
    pgcohere::auth::HbaConnection c;
    c.address = "127.0.0.1";
    c.database = "app";
    c.user = "alice";
    pgcohere::auth::match_hba(rules, c);
    c.address = "::1";
    c.local = size % 2 == 0;
    pgcohere::auth::match_hba(rules, c);
  } catch (const pgcohere::auth::HbaError&) {
  }
  return 0;
}
