// Client message translation for transaction pooling (see client_session.h).
#include "session/client_session.h"

#include "protocol/messages.h"

namespace pgcohere::session {
namespace {
// Closing a statement that does not exist is not an error and still answers
// CloseComplete: the reply a client's Close of its own name needs.
constexpr std::string_view kNoSuchStatement = "pgcohere_no_such_statement";
}  // namespace

void ClientSession::ensure_prepared(const Statement& s, ServerSession& server, std::string& out) {
  if (server.statements().has(s.id)) return;
  if (server.statements().uncertain(s.server_name)) {
    protocol::encode::close(out, 'S', s.server_name);
    server.injected_close();
    server.statements().settle(s.server_name);
  }
  std::string evicted = server.statements().add(s.id, s.server_name);
  if (!evicted.empty()) {
    protocol::encode::close(out, 'S', evicted);
    server.injected_close();
  }
  protocol::encode::parse(out, s.server_name, s.query, s.param_types);
  server.injected_parse();
  server.prepared_in_batch(s.id, s.server_name);
}

// SQL `DEALLOCATE name` of one of this client's protocol-level statements (psycopg sends
// it when its cache rotates): the server knows the statement as PGC_<id>, maybe not at all
// yet, and other clients may share it. Prepare it if needed, deallocate the server's copy,
// forget the client's name: the client sees the DEALLOCATE it expects.
bool ClientSession::rewrite_deallocate(std::string_view sql, std::string_view param_types, bool as_parse,
                                       ServerSession& server, std::string& out) {
  std::string name = deallocate_target(sql);
  if (name.empty()) return false;
  const Statement* s = statements_.find(name);
  if (!s) return false;
  std::string server_name = s->server_name;
  uint64_t id = s->id;
  ensure_prepared(*s, server, out);
  std::string sql_out = "DEALLOCATE \"" + server_name + "\"";  // quoted: PGC_ is upper case
  if (as_parse) protocol::encode::parse(out, "", sql_out, param_types);
  else protocol::encode::query(out, sql_out);
  server.statements().forget_uncertain(id, server_name);
  server.statements().settle(server_name);  // it is gone for sure once this succeeds...
  server.prepared_in_batch(id, server_name);  // ...and in doubt if the batch fails
  statements_.erase(name);
  return true;
}

bool ClientSession::translate(char type, std::string_view frame, std::string_view body, ServerSession& server,
                              StatementRegistry& registry, bool rewrite, std::string& out) {
  if (rewrite) {
    switch (type) {
      case 'Q': {
        auto q = protocol::parse_query(body);
        if (!q) return false;
        if (rewrite_deallocate(q.value(), {}, false, server, out)) {
          server.sent('Q');
          return true;
        }
        break;
      }
      case 'P': {
        auto p = protocol::parse_parse(body);
        if (!p) return false;
        if (p->name.empty()) {
          if (rewrite_deallocate(p->query, p->param_types, true, server, out)) {
            server.sent('P');
            return true;
          }
          break;
        }
        auto s = registry.intern(p->query, p->param_types);
        statements_.put(p->name, s);
        // The client expects a ParseComplete; the server gives one for a fresh Parse. If it
        // already has the statement, close and prepare it again rather than fake the reply.
        if (server.statements().has(s->id) || server.statements().uncertain(s->server_name)) {
          protocol::encode::close(out, 'S', s->server_name);
          server.injected_close();
          server.statements().settle(s->server_name);
        }
        std::string evicted = server.statements().add(s->id, s->server_name);
        if (!evicted.empty()) {
          protocol::encode::close(out, 'S', evicted);
          server.injected_close();
        }
        protocol::encode::parse(out, s->server_name, s->query, s->param_types);
        server.prepared_in_batch(s->id, s->server_name);
        server.sent('P');
        return true;
      }
      case 'B': {
        auto b = protocol::parse_bind_head(body);
        if (!b) return false;
        if (b->statement.empty()) break;
        const Statement* s = statements_.find(b->statement);
        if (!s) break;  // unknown to us: the server answers "does not exist"
        ensure_prepared(*s, server, out);
        protocol::encode::bind(out, b->portal, s->server_name, b->rest);
        server.sent('B');
        return true;
      }
      case 'D': {
        auto t = protocol::parse_target(body);
        if (!t) return false;
        if (t->kind != 'S' || t->name.empty()) break;
        const Statement* s = statements_.find(t->name);
        if (!s) break;
        ensure_prepared(*s, server, out);
        protocol::encode::describe(out, 'S', s->server_name);
        server.sent('D');
        return true;
      }
      case 'C': {
        auto t = protocol::parse_target(body);
        if (!t) return false;
        if (t->kind != 'S' || t->name.empty()) break;
        if (!statements_.erase(t->name)) break;
        // The server keeps the statement for other clients; this client just loses the name.
        protocol::encode::close(out, 'S', kNoSuchStatement);
        server.sent('C');
        return true;
      }
      default:
        break;
    }
  }
  out.append(frame);
  server.sent(type);
  return true;
}

void ClientSession::follow_sent(char type, std::string_view body, std::string_view sql) {
  switch (type) {
    case 'P': {
      auto p = protocol::parse_parse(body);
      if (!p) return;
      std::shared_ptr<const Statement> s;
      if (!p->name.empty()) {
        statements_.erase(p->name);  // the server keeps the old text if it refuses the new
        s = std::make_shared<const Statement>(Statement{0, "", std::string(p->query), std::string(p->param_types)});
      }
      unanswered_parses_.emplace_back(std::string(p->name), std::move(s));
      return;
    }
    case 'C': {
      auto t = protocol::parse_target(body);
      if (t && t->kind == 'S' && !t->name.empty()) statements_.erase(t->name);
      return;
    }
    case 'Q': {
      std::string name = deallocate_target(sql);
      if (!name.empty()) statements_.erase(name);
      return;  // DEALLOCATE ALL and DISCARD ALL: the server session reports them done
    }
    default:
      return;
  }
}

void ClientSession::follow_reply(char type) {
  if (type == '1') {
    if (unanswered_parses_.empty()) return;
    auto [name, s] = std::move(unanswered_parses_.front());
    unanswered_parses_.erase(unanswered_parses_.begin());
    if (s) statements_.put(name, std::move(s));
  } else if (type == 'Z') {
    // Parses still unanswered were skipped after an error: the server never made them (a
    // batch pipelined behind this one loses its names too, which only costs cache hits).
    unanswered_parses_.clear();
  }
}

}  // namespace pgcohere::session
