// Which client statements make the cache stop answering a session (session_change.h).
#include "cache/session_change.h"

#include <gtest/gtest.h>

namespace pgcohere::cache {
namespace {

TEST(SessionChange, SessionSetsOfTheKeysUnreportedSettingsCount) {
  for (const char* sql : {"SET search_path = s2, public", "set SEARCH_PATH to default", "RESET search_path",
                          "SET ROLE reader", "RESET ROLE", "SET SESSION AUTHORIZATION bob",
                          "RESET SESSION AUTHORIZATION", "RESET ALL", "DISCARD ALL", "discard temp",
                          "SET SESSION search_path = s2", "BEGIN; SET search_path = s2; COMMIT",
                          "SET extra_float_digits = 0", "SET bytea_output = 'escape'", "RESET bytea_output"})
    EXPECT_TRUE(changes_unseen_session_state(sql)) << sql;
}

TEST(SessionChange, SetConfigAnywhereInAStatementCounts) {
  EXPECT_TRUE(changes_unseen_session_state("SELECT set_config('search_path', 's2', false)"));
  EXPECT_TRUE(changes_unseen_session_state("SELECT pg_catalog.set_config('role', 'bob', false)"));
  EXPECT_TRUE(changes_unseen_session_state(
      "SELECT id FROM messages WHERE body = (SELECT SET_CONFIG('search_path', $1, false))"));
}

TEST(SessionChange, StatementsThatOnlyMentionTheNamesDoNotCount) {
  for (const char* sql : {"SELECT role, \"authorization\" FROM grants WHERE role = $1",
                          "SET LOCAL search_path = s2", "SET statement_timeout = 0", "RESET statement_timeout",
                          "ALTER ROLE bob SET search_path = s2", "SHOW search_path", "SELECT 'reset' AS discard",
                          "SELECT current_setting('search_path')", "CREATE ROLE reader"})
    EXPECT_FALSE(changes_unseen_session_state(sql)) << sql;
}

TEST(SessionChange, TextThatNamesNoneOfThemIsNeverParsed) {
  // Unparsable text counts as a change only when it mentions one of the names.
  EXPECT_FALSE(changes_unseen_session_state("SELEC broken FROM"));
  EXPECT_TRUE(changes_unseen_session_state("SET search_path = = ("));
  EXPECT_FALSE(changes_unseen_session_state(""));
}

}  // namespace
}  // namespace pgcohere::cache
