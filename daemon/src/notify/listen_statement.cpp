// LISTEN / UNLISTEN recognition (see listen_statement.h).
#include "notify/listen_statement.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <memory>

#include "util/folded_needles.h"

namespace pgcohere::notify {

namespace {

// Every statement that LISTENs or UNLISTENs names one of these ("unlisten" holds "listen").
const util::FoldedNeedles kNeedles({"listen", "discard"});

struct TreeDeleter {
  void operator()(PgQuery__ParseResult* r) const { pg_query__parse_result__free_unpacked(r, nullptr); }
};

}  // namespace

std::optional<ListenRequest> recognize(std::string_view sql) {
  if (!kNeedles.found_in(sql)) return std::nullopt;
  std::string text(sql);
  PgQueryProtobufParseResult parsed = pg_query_parse_protobuf(text.c_str());
  std::unique_ptr<PgQuery__ParseResult, TreeDeleter> tree;
  if (!parsed.error) {
    tree.reset(pg_query__parse_result__unpack(nullptr, parsed.parse_tree.len,
                                              reinterpret_cast<const uint8_t*>(parsed.parse_tree.data)));
  }
  pg_query_free_protobuf_parse_result(parsed);
  if (!tree) return std::nullopt;  // PostgreSQL reports the syntax error itself
  ListenRequest req;
  bool other = false;
  for (std::size_t i = 0; i < tree->n_stmts; ++i) {
    const PgQuery__Node* node = tree->stmts[i]->stmt;
    if (node && node->node_case == PG_QUERY__NODE__NODE_LISTEN_STMT) {
      req.commands.push_back({ListenCommand::Kind::listen, node->listen_stmt->conditionname});
    } else if (node && node->node_case == PG_QUERY__NODE__NODE_UNLISTEN_STMT) {
      const char* name = node->unlisten_stmt->conditionname;
      // UNLISTEN * leaves the name unset (an empty string in the protobuf tree).
      if (!name || !*name) req.commands.push_back({ListenCommand::Kind::unlisten_all, ""});
      else req.commands.push_back({ListenCommand::Kind::unlisten, name});
    } else if (node && node->node_case == PG_QUERY__NODE__NODE_DISCARD_STMT &&
               node->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL) {
      // DISCARD ALL includes UNLISTEN *, and the rest of it is the server's to run.
      req.commands.push_back({ListenCommand::Kind::unlisten_all, ""});
      other = true;
    } else {
      other = true;
    }
  }
  if (req.commands.empty()) return std::nullopt;
  req.mixed = other;
  return req;
}

std::string_view command_tag(const ListenCommand& c) {
  return c.kind == ListenCommand::Kind::listen ? "LISTEN" : "UNLISTEN";
}

std::string quote_identifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace pgcohere::notify
