// Tokenizer and parser for admin console commands.
#include "admin/command.h"

#include <array>
#include <utility>
#include <vector>

namespace pgcohere::admin {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_word_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}
std::string uppered(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

struct Token {
  enum Kind { word, quoted, string, equals, semicolon } kind;
  std::string text;  // words as typed; quoted and string tokens unescaped
};

// Returns nullopt on a character that cannot start a token or an unterminated quote.
std::optional<std::vector<Token>> tokenize(std::string_view q) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < q.size()) {
    char c = q[i];
    if (is_ws(c)) {
      ++i;
    } else if (is_word_char(c)) {
      std::size_t j = i;
      while (j < q.size() && is_word_char(q[j])) ++j;
      out.push_back({Token::word, std::string(q.substr(i, j - i))});
      i = j;
    } else if (c == '"' || c == '\'') {
      std::string text;
      std::size_t j = i + 1;
      for (;;) {
        if (j >= q.size()) return std::nullopt;
        if (q[j] == c) {
          if (j + 1 < q.size() && q[j + 1] == c) {
            text += c;
            j += 2;
            continue;
          }
          break;
        }
        text += q[j++];
      }
      out.push_back({c == '"' ? Token::quoted : Token::string, std::move(text)});
      i = j + 1;
    } else if (c == '=') {
      out.push_back({Token::equals, "="});
      ++i;
    } else if (c == ';') {
      out.push_back({Token::semicolon, ";"});
      ++i;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

constexpr std::array<std::pair<std::string_view, Verb>, 15> kVerbs{{
    {"show", Verb::show}, {"select", Verb::show}, {"pause", Verb::pause},
    {"resume", Verb::resume}, {"reload", Verb::reload}, {"shutdown", Verb::shutdown},
    {"kill", Verb::kill}, {"kill_client", Verb::kill_client}, {"suspend", Verb::suspend},
    {"set", Verb::set}, {"disable", Verb::disable}, {"enable", Verb::enable},
    {"reconnect", Verb::reconnect}, {"wait_close", Verb::wait_close}, {"cache", Verb::cache_delete},
}};

constexpr std::array<std::pair<std::string_view, Show>, 23> kShows{{
    {"help", Show::help}, {"pools", Show::pools}, {"stats", Show::stats},
    {"servers", Show::servers}, {"clients", Show::clients}, {"databases", Show::databases},
    {"config", Show::config}, {"lists", Show::lists}, {"users", Show::users},
    {"version", Show::version}, {"mem", Show::mem}, {"totals", Show::totals},
    {"stats_totals", Show::stats_totals}, {"stats_averages", Show::stats_averages},
    {"state", Show::state}, {"peers", Show::peers}, {"peer_pools", Show::peer_pools},
    {"dns_hosts", Show::dns_hosts}, {"dns_zones", Show::dns_zones}, {"fds", Show::fds},
    {"sockets", Show::sockets}, {"active_sockets", Show::active_sockets}, {"cache", Show::cache},
}};

// Parameters that drivers and tools SHOW on connect; answered with fixed values.
constexpr std::array<std::string_view, 5> kFakeParams{
    "client_encoding", "default_transaction_isolation", "standard_conforming_strings",
    "datestyle", "timezone"};

ParseResult syntax_error(std::string_view query) {
  return {std::nullopt, "invalid command '" + std::string(query) + "', use SHOW HELP;"};
}

bool is_identifier(const Token& t) { return t.kind == Token::word || t.kind == Token::quoted; }
// Unquoted words are case-insensitive; quoted identifiers keep their case.
std::string ident(const Token& t) { return t.kind == Token::word ? lowered(t.text) : t.text; }

}  // namespace

std::string_view verb_name(Verb verb) {
  switch (verb) {
    case Verb::show: return "SHOW";
    case Verb::pause: return "PAUSE";
    case Verb::resume: return "RESUME";
    case Verb::reload: return "RELOAD";
    case Verb::shutdown: return "SHUTDOWN";
    case Verb::kill: return "KILL";
    case Verb::kill_client: return "KILL_CLIENT";
    case Verb::suspend: return "SUSPEND";
    case Verb::set: return "SET";
    case Verb::disable: return "DISABLE";
    case Verb::enable: return "ENABLE";
    case Verb::reconnect: return "RECONNECT";
    case Verb::wait_close: return "WAIT_CLOSE";
    case Verb::cache_delete: return "CACHE DELETE";
  }
  return "?";
}

std::string_view show_name(Show show) {
  if (show == Show::cache_rules) return "cache rules";
  for (const auto& [name, s] : kShows)
    if (s == show) return name;
  return "param";
}

bool is_fake_param(std::string_view name) {
  for (std::string_view p : kFakeParams)
    if (p == name) return true;
  return false;
}

bool requires_admin(const Command& command) {
  if (command.verb == Verb::set) return !is_fake_param(command.arg);
  if (command.verb != Verb::show) return true;
  return command.show == Show::fds;
}

ParseResult parse_command(std::string_view query) {
  auto tokens = tokenize(query);
  if (!tokens) return syntax_error(query);
  std::vector<Token>& t = *tokens;
  if (!t.empty() && t.back().kind == Token::semicolon) t.pop_back();
  if (t.empty() || !is_identifier(t[0])) return syntax_error(query);
  for (const Token& tok : t)
    if (tok.kind == Token::semicolon) return syntax_error(query);

  std::string verb_word = ident(t[0]);
  const Verb* verb = nullptr;
  for (const auto& [name, v] : kVerbs)
    if (name == verb_word) verb = &v;
  if (!verb) return syntax_error(query);

  Command cmd;
  cmd.verb = *verb;

  if (cmd.verb == Verb::cache_delete) {
    // CACHE DELETE 'key' | CACHE DELETE PATTERN 'glob' | CACHE DELETE TABLE name
    auto value = [](const Token& tok) { return tok.kind == Token::word ? tok.text : tok.text; };
    if (t.size() < 3 || !is_identifier(t[1]) || ident(t[1]) != "delete") return syntax_error(query);
    if (t.size() == 3 && t[2].kind != Token::equals) {
      cmd.arg = "key";
      cmd.value = value(t[2]);
      return {cmd, {}};
    }
    if (t.size() == 4 && is_identifier(t[2]) && (ident(t[2]) == "pattern" || ident(t[2]) == "table") &&
        t[3].kind != Token::equals) {
      cmd.arg = ident(t[2]);
      cmd.value = value(t[3]);
      return {cmd, {}};
    }
    return syntax_error(query);
  }

  if (cmd.verb == Verb::show && t.size() == 3 && is_identifier(t[1]) && is_identifier(t[2]) &&
      ident(t[1]) == "cache" && ident(t[2]) == "rules") {
    cmd.show = Show::cache_rules;
    return {cmd, {}};
  }

  if (cmd.verb == Verb::set) {
    // SET key = value | SET key TO value | SET key = 'string'
    if (t.size() != 4 || !is_identifier(t[1])) return syntax_error(query);
    bool to = t[2].kind == Token::word && lowered(t[2].text) == "to";
    if (t[2].kind != Token::equals && !to) return syntax_error(query);
    if (!is_identifier(t[3]) && t[3].kind != Token::string) return syntax_error(query);
    cmd.arg = ident(t[1]);
    cmd.value = t[3].text;
    return {cmd, {}};
  }

  if (t.size() > 2 || (t.size() == 2 && !is_identifier(t[1]))) return syntax_error(query);
  std::string arg = t.size() == 2 ? ident(t[1]) : std::string();

  switch (cmd.verb) {
    case Verb::show: {
      if (arg.empty()) return syntax_error(query);
      for (const auto& [name, s] : kShows)
        if (name == arg) {
          cmd.show = s;
          return {cmd, {}};
        }
      for (std::string_view p : kFakeParams)
        if (p == arg) {
          cmd.show = Show::param;
          cmd.arg = arg;
          return {cmd, {}};
        }
      return syntax_error(query);
    }
    case Verb::reload:
    case Verb::suspend:
      if (!arg.empty()) return syntax_error(query);
      return {cmd, {}};
    case Verb::shutdown: {
      std::string mode = uppered(arg);
      if (!mode.empty() && mode != "WAIT_FOR_SERVERS" && mode != "WAIT_FOR_CLIENTS")
        return syntax_error(query);
      cmd.arg = mode;
      return {cmd, {}};
    }
    case Verb::kill_client:
      if (arg.empty() || arg.size() > 18 || arg.find_first_not_of("0123456789") != std::string::npos)
        return {std::nullopt, "invalid client pointer supplied"};
      cmd.arg = arg;
      return {cmd, {}};
    case Verb::disable:
    case Verb::enable:
      if (arg.empty()) return {std::nullopt, "a database is required"};
      cmd.arg = t[1].text;
      return {cmd, {}};
    default:
      // Database names as typed (PgBouncer compares them case-sensitively).
      cmd.arg = t.size() == 2 ? t[1].text : std::string();
      return {cmd, {}};
  }
}

}  // namespace pgcohere::admin
