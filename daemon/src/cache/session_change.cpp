// See session_change.h.
#include "cache/session_change.h"

#include <pg_query.h>

#include <string>

#include <nlohmann/json.hpp>

#include "util/folded_needles.h"

namespace pgcohere::cache {

namespace {
using nlohmann::json;

// Every statement that changes one of the settings names one of these (case-folded).
const util::FoldedNeedles kNeedles({"search_path", "role", "authorization", "reset", "discard", "set_config",
                              "extra_float_digits", "bytea_output"});

bool is_session_variable(const std::string& name) {
  return name == "search_path" || name == "role" || name == "session_authorization" ||
         name == "extra_float_digits" || name == "bytea_output";
}

bool variable_set_changes(const json& set) {
  if (set.value("kind", "") == "VAR_RESET_ALL") return true;
  return is_session_variable(set.value("name", "")) && !set.value("is_local", false);
}

bool calls_set_config(const json& call) {
  const auto& names = call.value("funcname", json::array());
  if (names.empty()) return false;
  const auto& last = names.back().value("String", json::object());
  return last.value("sval", "") == "set_config";
}

// Any node anywhere in the tree that changes the session: set_config() can hide in any
// expression.
bool walk(const json& node) {
  if (node.is_object()) {
    for (const auto& [kind, child] : node.items()) {
      if (kind == "VariableSetStmt" && variable_set_changes(child)) return true;
      if (kind == "DiscardStmt") return true;
      if (kind == "FuncCall" && calls_set_config(child)) return true;
      if (walk(child)) return true;
    }
  } else if (node.is_array()) {
    for (const auto& child : node)
      if (walk(child)) return true;
  }
  return false;
}
}  // namespace

bool changes_unseen_session_state(std::string_view sql) {
  if (!kNeedles.found_in(sql)) return false;
  std::string text(sql);
  PgQueryParseResult parsed = pg_query_parse(text.c_str());
  bool changes = true;
  if (!parsed.error && parsed.parse_tree) {
    try {
      changes = walk(json::parse(parsed.parse_tree));
    } catch (const std::exception&) {
      changes = true;
    }
  }
  pg_query_free_parse_result(parsed);
  return changes;
}

}  // namespace pgcohere::cache
