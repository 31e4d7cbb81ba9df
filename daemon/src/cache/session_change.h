// Statements after which the cache can no longer tell what a client's query would read or
// how its reply would be written. The key binds the login role, the search_path,
// extra_float_digits and bytea_output as the pooler knows them (startup packet or server
// default); PostgreSQL 15 reports none of them when a session changes them. A session-level
// SET or RESET of one of them, RESET ALL, DISCARD or a set_config() call changes the
// server connection it ran on and nothing the pooler sees. After one of them the client is
// served by PostgreSQL only, as it would be without the cache.
#pragma once

#include <string_view>

namespace pgcohere::cache {

// `sql`: the text of a Query or Parse message. True if it may change one of those settings
// for the session (decided from the parse tree; text that does not mention any of the
// names involved is never parsed). Unparsable text counts as a change: PostgreSQL's
// grammar may accept what this one does not.
bool changes_unseen_session_state(std::string_view sql);

}  // namespace pgcohere::cache
