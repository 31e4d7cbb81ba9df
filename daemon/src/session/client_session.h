// The protocol state of one client: the parameters it set, its named prepared statements,
// and the translation of its messages for whichever server connection runs them
// (statement names rewritten, statements prepared on demand). Pure.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "session/params.h"
#include "session/prepared.h"
#include "session/server_session.h"

namespace pgcohere::session {

class ClientSession {
 public:
  ParamMap& params() { return params_; }
  const ParamMap& params() const { return params_; }
  ClientStatements& statements() { return statements_; }

  // Appends to `out` what `server` must receive for one client message (`frame` is the
  // whole message, type byte included) and records it in `server`. With `rewrite`
  // false (session pooling, or max_prepared_statements = 0) messages pass unchanged.
  // Returns false when the message is malformed.
  bool translate(char type, std::string_view frame, std::string_view body, ServerSession& server,
                 StatementRegistry& registry, bool rewrite, std::string& out);

  // Session pooling, where the client's statement names are its server's own: statements()
  // follows them so the query cache can answer a Bind of a named statement. A name counts
  // once the server answered its Parse with ParseComplete; a name the server refused (taken
  // already, or skipped after an error earlier in the batch) is unknown, and so is any
  // name closed, deallocated or parsed again, from the moment the client asks.
  // `type`/`body`: a message the client sends; `sql` its text for a Query.
  void follow_sent(char type, std::string_view body, std::string_view sql);
  // A message the server sent that reaches the client.
  void follow_reply(char type);

 private:
  void ensure_prepared(const Statement& s, ServerSession& server, std::string& out);
  bool rewrite_deallocate(std::string_view sql, std::string_view param_types, bool as_parse, ServerSession& server,
                          std::string& out);

  ParamMap params_;
  ClientStatements statements_;
  // Parses sent in session pooling and not answered yet, in order (unnamed ones as
  // nullptr: every Parse gets its ParseComplete in turn). A vector: an empty deque
  // allocates 576 bytes per client.
  std::vector<std::pair<std::string, std::shared_ptr<const Statement>>> unanswered_parses_;
};

}  // namespace pgcohere::session
