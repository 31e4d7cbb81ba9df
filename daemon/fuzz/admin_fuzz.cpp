// libFuzzer target: any console query parses or fails with a message; a parsed command
// runs through the Console against a target that answers everything.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "admin/console.h"
#include "util/log.h"

using namespace pgcohere::admin;

namespace {
class NullTarget : public ConsoleTarget {
 public:
  Snapshot snapshot(Show) override {
    Snapshot s;
    s.pools.emplace_back();
    s.clients.emplace_back();
    s.servers.emplace_back();
    s.databases.emplace_back();
    s.users.emplace_back();
    s.stats.emplace_back();
    s.config.emplace_back();
    s.mem.emplace_back();
    return s;
  }
  void pause(const std::string&, Done done) override { done(""); }
  void resume(const std::string&, Done done) override { done(""); }
  void reload(Done done) override { done(""); }
  void shutdown(const std::string&, Done done) override { done(""); }
  void kill(const std::string&, Done done) override { done(""); }
};
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  pgcohere::log::set_min_level(pgcohere::log::Level::error);  // the console logs each command
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view q(reinterpret_cast<const char*>(data), size);
  ParseResult p = parse_command(q);
  if (!p.command && p.error.empty()) __builtin_trap();
  static NullTarget target;
  Console console(target);
  int replies = 0;
  console.execute(q, true, [&](Reply r) {
    ++replies;
    if (r.ok()) {
      for (const auto& row : r.result->rows)
        if (row.size() != r.result->columns.size()) __builtin_trap();
    }
  });
  if (replies != 1) __builtin_trap();
  return 0;
}
