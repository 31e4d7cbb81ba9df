// LISTEN/NOTIFY in transaction pooling: recognizing LISTEN/UNLISTEN from the parse tree,
// the channel bookkeeping of a LISTEN connection, the bounded pending notifications, and
// the NotificationResponse codec.
#include <gtest/gtest.h>

#include "notify/channel_registry.h"
#include "notify/listen_statement.h"
#include "protocol/messages.h"

using namespace pgcohere;
using notify::ChannelRegistry;
using notify::ListenCommand;
using Kind = notify::ListenCommand::Kind;

TEST(ListenStatement, ListenIsRecognizedWithItsChannelFoldedAsPostgresFoldsIt) {
  auto r = notify::recognize("LISTEN Orders");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->mixed);
  ASSERT_EQ(r->commands.size(), 1u);
  EXPECT_EQ(r->commands[0], (ListenCommand{Kind::listen, "orders"}));
}

TEST(ListenStatement, QuotedChannelsKeepCaseAndSpaces) {
  auto r = notify::recognize("listen \"Mixed Case\"");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->commands[0].channel, "Mixed Case");
}

TEST(ListenStatement, UnlistenAndUnlistenStarAreTold) {
  auto r = notify::recognize("UNLISTEN a; UNLISTEN *;");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->commands.size(), 2u);
  EXPECT_EQ(r->commands[0], (ListenCommand{Kind::unlisten, "a"}));
  EXPECT_EQ(r->commands[1].kind, Kind::unlisten_all);
  EXPECT_EQ(notify::command_tag(r->commands[1]), "UNLISTEN");
}

TEST(ListenStatement, CommentsBeforeListenDoNotHideIt) {
  auto r = notify::recognize("/* app */ -- x\n LISTEN ch");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->commands[0].channel, "ch");
}

TEST(ListenStatement, OtherStatementsThatMentionListenAreNotListen) {
  EXPECT_FALSE(notify::recognize("SELECT 1"));
  EXPECT_FALSE(notify::recognize("SELECT listeners FROM listen_log"));
  EXPECT_FALSE(notify::recognize("NOTIFY listen, 'listen'"));
  EXPECT_FALSE(notify::recognize("SELECT pg_notify('listen', 'x')"));
  EXPECT_FALSE(notify::recognize("-- listen\nSELECT 1"));
}

TEST(ListenStatement, SyntaxErrorsAreLeftToPostgres) { EXPECT_FALSE(notify::recognize("LISTEN")); }

TEST(ListenStatement, ListenTogetherWithOtherStatementsIsMixed) {
  auto r = notify::recognize("SELECT 1; LISTEN a");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->mixed);
}

TEST(ListenStatement, DiscardAllUnlistensEverythingAndStillRunsOnTheServer) {
  auto r = notify::recognize("DISCARD ALL");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->mixed);
  EXPECT_FALSE(r->has_listen());
  EXPECT_EQ(r->commands[0].kind, Kind::unlisten_all);
  EXPECT_FALSE(notify::recognize("DISCARD PLANS"));
}

TEST(ListenStatement, QuoteIdentifierDoublesQuotes) {
  EXPECT_EQ(notify::quote_identifier("a\"b"), "\"a\"\"b\"");
}

TEST(ChannelRegistry, TheFirstListenerOfAChannelAsksForAListenAndTheLastForAnUnlisten) {
  ChannelRegistry r;
  EXPECT_TRUE(r.subscribe(1, "a"));
  EXPECT_FALSE(r.subscribe(2, "a"));
  EXPECT_FALSE(r.subscribe(2, "a"));  // twice is once
  EXPECT_EQ(r.subscription_count(), 2u);
  EXPECT_EQ(r.client_count(), 2u);
  EXPECT_FALSE(r.unsubscribe(1, "a"));
  EXPECT_FALSE(r.unsubscribe(1, "a"));
  EXPECT_TRUE(r.unsubscribe(2, "a"));
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.client_count(), 0u);
  EXPECT_EQ(r.subscription_count(), 0u);
}

TEST(ChannelRegistry, UnsubscribeAllReturnsOnlyTheChannelsLeftEmpty) {
  ChannelRegistry r;
  r.subscribe(1, "a");
  r.subscribe(1, "b");
  r.subscribe(2, "b");
  auto emptied = r.unsubscribe_all(1);
  EXPECT_EQ(emptied, std::vector<std::string>{"a"});
  EXPECT_EQ(r.channels(), std::vector<std::string>{"b"});
  EXPECT_TRUE(r.channels_of(1).empty());
  EXPECT_EQ(*r.listeners("b"), (std::set<ChannelRegistry::Id>{2}));
  EXPECT_EQ(r.listeners("a"), nullptr);
}

TEST(ChannelRegistry, AChannelIsActiveOnlyAfterItsLatestListenIsAcknowledged) {
  ChannelRegistry r;
  r.subscribe(1, "a");
  auto first = r.listen_sent("a");
  EXPECT_FALSE(r.active("a"));
  r.unsubscribe(1, "a");  // UNLISTEN goes out after the first LISTEN
  r.subscribe(2, "a");
  auto second = r.listen_sent("a");
  EXPECT_FALSE(r.listen_acknowledged("a", first));  // the stale answer
  EXPECT_FALSE(r.active("a"));
  EXPECT_TRUE(r.listen_acknowledged("a", second));
  EXPECT_TRUE(r.active("a"));
}

TEST(ChannelRegistry, ALostConnectionDeactivatesEveryChannelButKeepsItsListeners) {
  ChannelRegistry r;
  r.subscribe(1, "a");
  auto gen = r.listen_sent("a");
  r.listen_acknowledged("a", gen);
  r.connection_lost();
  EXPECT_FALSE(r.active("a"));
  EXPECT_FALSE(r.listen_acknowledged("a", gen));  // an answer from the old connection
  EXPECT_TRUE(r.listening(1, "a"));
}

TEST(PendingNotifications, KeepsMessagesInOrderUpToTheBound) {
  notify::PendingNotifications p(10);
  EXPECT_TRUE(p.push("abcd"));
  EXPECT_TRUE(p.push("efgh"));
  EXPECT_FALSE(p.push("ijk"));  // 11 bytes would pass the bound: refused whole
  EXPECT_EQ(p.size(), 8u);
  std::string out = "x";
  p.move_to(out);
  EXPECT_EQ(out, "xabcdefgh");
  EXPECT_TRUE(p.empty());
  EXPECT_TRUE(p.push("ijk"));
}

TEST(NotificationResponse, EncodesAndParsesBack) {
  std::string out;
  protocol::encode::notification_response(out, 4242, "chan", "payload");
  ASSERT_EQ(out[0], 'A');
  auto a = protocol::parse_notification_response(std::string_view(out).substr(5));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->pid, 4242);
  EXPECT_EQ(a->channel, "chan");
  EXPECT_EQ(a->payload, "payload");
  EXPECT_FALSE(protocol::parse_notification_response(std::string_view("\0\0\0\1chan", 8)));
}
