// SET pgcohere.cache_bypass (see session_switch.h).
#include "cache/session_switch.h"

#include <pg_query.h>
#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "util/folded_needles.h"
#include "protocol/messages.h"
#include "protocol/wire.h"

namespace pgcohere::cache {

namespace {
constexpr std::string_view kName = "pgcohere.cache_bypass";

std::optional<bool> parse_bool(std::string v) {
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v == "on" || v == "true" || v == "1" || v == "yes" || v == "t") return true;
  if (v == "off" || v == "false" || v == "0" || v == "no" || v == "f") return false;
  return std::nullopt;
}

std::optional<bool> bypass_value(const nlohmann::json& set) {
  std::string kind = set.value("kind", "");
  if (kind == "VAR_RESET" || kind == "VAR_SET_DEFAULT") return false;
  if (kind != "VAR_SET_VALUE" || !set.contains("args") || set["args"].size() != 1) return std::nullopt;
  const auto& c = set["args"][0].value("A_Const", nlohmann::json::object());
  if (c.contains("sval")) return parse_bool(c["sval"].value("sval", ""));
  if (c.contains("boolval")) return c["boolval"].value("boolval", false);
  if (c.contains("ival")) return c["ival"].value("ival", 0) != 0;
  return std::nullopt;
}
}  // namespace

// Only statements that start with SET or RESET are parsed; everything else costs a
// comparison.
bool starts_like_set(std::string_view sql) {
  std::size_t i = 0;
  while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
  sql.remove_prefix(i);
  auto starts_with = [sql](std::string_view word) {
    return sql.size() >= word.size() &&
           std::equal(word.begin(), word.end(), sql.begin(), [](char w, char t) { return util::ascii_fold(t) == w; });
  };
  return starts_with("set") || starts_with("reset");
}

std::optional<SessionSwitch> session_switch(std::string_view data) {
  if (data.size() < 5 || data[0] != 'Q') return std::nullopt;
  int32_t len = protocol::read_i32(data.data() + 1);
  if (len < 5 || static_cast<std::size_t>(len) > data.size() - 1) return std::nullopt;
  auto sql = protocol::parse_query(data.substr(5, static_cast<std::size_t>(len) - 4));
  if (!sql || !starts_like_set(sql.value())) return std::nullopt;
  std::string text(sql.value());
  PgQueryParseResult parsed = pg_query_parse(text.c_str());
  std::optional<SessionSwitch> out;
  if (!parsed.error && parsed.parse_tree) {
    try {
      auto tree = nlohmann::json::parse(parsed.parse_tree);
      const auto& stmts = tree.value("stmts", nlohmann::json::array());
      if (stmts.size() == 1) {
        const auto& stmt = stmts[0].value("stmt", nlohmann::json::object());
        if (stmt.contains("VariableSetStmt")) {
          const auto& set = stmt["VariableSetStmt"];
          if (set.value("name", "") == kName && !set.value("is_local", false)) {
            if (auto v = bypass_value(set)) {
              std::string kind = set.value("kind", "");
              out = SessionSwitch{*v, kind == "VAR_RESET" ? "RESET" : "SET", 1 + static_cast<std::size_t>(len)};
            }
          }
        }
      }
    } catch (const std::exception&) {
      out.reset();
    }
  }
  pg_query_free_parse_result(parsed);
  return out;
}

}  // namespace pgcohere::cache
