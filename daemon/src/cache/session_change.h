// Statements after which the cache can no longer tell what a client's query would read.
// The key binds the login role and the search_path the pooler knows (startup packet or
// server default). In transaction pooling a session-level SET of search_path or role, a
// RESET ALL, DISCARD or set_config() changes the server connection it ran on and nothing
// the pooler sees (PostgreSQL 15 does not report search_path or role). After one of them
// the client is served by PostgreSQL only, as it would be without the cache.
#pragma once

#include <string_view>

namespace pgcohere::cache {

// `sql`: the text of a Query or Parse message. True if it may change the session's
// search_path or role (decided from the parse tree; text that does not mention any of
// the names involved is never parsed). Unparsable text counts as a change: PostgreSQL's
// grammar may accept what this one does not.
bool changes_session_resolution(std::string_view sql);

}  // namespace pgcohere::cache
