// LISTEN and UNLISTEN as a client sends them, recognized from libpg_query's parse tree
// (never from the text), so that in transaction pooling the pooler can answer them itself
// instead of letting a pooled server connection listen for whoever uses it next. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::notify {

struct ListenCommand {
  enum class Kind { listen, unlisten, unlisten_all };
  Kind kind = Kind::listen;
  std::string channel;  // as PostgreSQL names it: folded to lower case unless quoted
  friend bool operator==(const ListenCommand&, const ListenCommand&) = default;
};

struct ListenRequest {
  std::vector<ListenCommand> commands;  // in the order written
  // LISTEN/UNLISTEN in one Query string together with other statements: the pooler cannot
  // split it between itself and a server. With a LISTEN the client gets an error; UNLISTENs
  // alone (asyncpg's reset query "...; UNLISTEN *; RESET ALL;") are applied by the pooler
  // and the whole string still runs on a server, where UNLISTEN changes nothing.
  bool mixed = false;
  bool has_listen() const {
    for (const auto& c : commands)
      if (c.kind == ListenCommand::Kind::listen) return true;
    return false;
  }
};

// nullopt unless `sql` parses and contains a LISTEN or UNLISTEN statement (or DISCARD ALL,
// which includes UNLISTEN *: reported as an UNLISTEN * mixed with another statement). Texts
// without the letters "listen" or "discard" (any case) are not parsed at all.
std::optional<ListenRequest> recognize(std::string_view sql);

// The command tag PostgreSQL answers with ("LISTEN" or "UNLISTEN").
std::string_view command_tag(const ListenCommand& c);

// `name` as an SQL identifier, quoted the way PostgreSQL reads it back.
std::string quote_identifier(std::string_view name);

}  // namespace pgcohere::notify
