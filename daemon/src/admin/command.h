// The admin console's command language (PgBouncer's): `WORD [WORD] [;]` and
// `SET key = value`, case-insensitive, identifiers optionally double-quoted.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgcohere::admin {

enum class Verb {
  show, pause, resume, reload, shutdown, kill, kill_client, suspend, set, disable, enable,
  reconnect, wait_close,
  cache_delete,  // CACHE DELETE 'key' | CACHE DELETE PATTERN 'glob' | CACHE DELETE TABLE name
};

enum class Show {
  help, pools, stats, servers, clients, databases, config, lists, users, version, mem, totals,
  stats_totals, stats_averages, state, peers, peer_pools, dns_hosts, dns_zones, fds, sockets,
  active_sockets,
  param,  // SHOW client_encoding and the other parameters drivers ask for
  cache, cache_rules,  // SHOW CACHE, SHOW CACHE RULES
};

struct Command {
  Verb verb = Verb::show;
  Show show = Show::help;  // for Verb::show
  // Verb::show with Show::param: the parameter; PAUSE/RESUME/KILL/...: the database ("" =
  // all); SHUTDOWN: "" or WAIT_FOR_SERVERS / WAIT_FOR_CLIENTS (upper-cased);
  // KILL_CLIENT: the client id; SET: the key (lower-cased); CACHE DELETE: "key",
  // "pattern" or "table".
  std::string arg;
  std::string value;  // SET: the value; CACHE DELETE: the key, glob or table
};

struct ParseResult {
  std::optional<Command> command;
  std::string error;  // what to send the client, PgBouncer's wording where it has one
};

ParseResult parse_command(std::string_view query);

// client_encoding, datestyle, ...: drivers SHOW and SET them on connect; the console
// answers SHOW with fixed values and ignores SET, as PgBouncer does.
bool is_fake_param(std::string_view name);

// Whether only admin_users (not stats_users) may run it.
bool requires_admin(const Command& command);

std::string_view verb_name(Verb verb);  // upper case, also the command tag
std::string_view show_name(Show show);  // lower case, as typed after SHOW

}  // namespace pgcohere::admin
