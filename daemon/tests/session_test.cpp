// The pure session layer: batches and ReadyForQuery, dropped replies of injected requests,
// prepared statement translation, parameter tracking.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/frame.h"
#include "protocol/messages.h"
#include "session/client_session.h"
#include "session/params.h"
#include "session/server_session.h"

using namespace pgcohere;
using namespace std::string_literals;

namespace {
struct Msg {
  char type;
  std::string body;
};

std::vector<Msg> split(const std::string& bytes) {
  std::vector<Msg> out;
  protocol::FrameDecoder d(protocol::FrameDecoder::Side::frontend);
  std::string_view in = bytes;
  while (!in.empty()) {
    auto f = d.next(in);
    EXPECT_EQ(f.kind, protocol::Frame::Kind::message);
    if (f.kind != protocol::Frame::Kind::message) break;
    out.push_back({f.type, std::string(f.body)});
    in.remove_prefix(f.consumed);
  }
  return out;
}

// Feeds one client message through translate, returns what the server receives.
std::string send(session::ClientSession& c, session::ServerSession& s, session::StatementRegistry& r,
                 const std::string& frame) {
  protocol::FrameDecoder d(protocol::FrameDecoder::Side::frontend);
  auto f = d.next(frame);
  std::string out;
  EXPECT_TRUE(c.translate(f.type, frame.substr(0, f.consumed), f.body, s, r, true, out));
  return out;
}

bool forwarded(session::ServerSession& s, char type, std::string body = "") {
  return s.on_message(type, body).forward;
}
}  // namespace

TEST(ServerSession, IdleOnlyAfterTheLastReadyForQuery) {
  session::ServerSession s;
  EXPECT_TRUE(s.idle());
  s.sent('Q');
  s.sent('Q');  // pipelined
  EXPECT_FALSE(s.idle());
  s.on_message('C', "SELECT 1\0"s);
  auto v = s.on_message('Z', "I");
  EXPECT_TRUE(v.batch_done);
  EXPECT_FALSE(s.idle());
  s.on_message('Z', "T");
  EXPECT_FALSE(s.idle());  // inside a transaction
  s.sent('Q');
  s.on_message('Z', "I");
  EXPECT_TRUE(s.idle());
}

TEST(ServerSession, ExtendedBatchWithoutSyncStaysOpen) {
  session::ServerSession s;
  s.sent('P');
  s.sent('B');
  s.sent('E');
  s.sent('H');  // Flush: answers come, but no ReadyForQuery
  s.on_message('1', "");
  s.on_message('2', "");
  s.on_message('C', "SELECT 1\0"s);
  EXPECT_TRUE(s.requests_in_flight());
  s.sent('S');
  s.on_message('Z', "I");
  EXPECT_TRUE(s.idle());
}

TEST(ServerSession, CopyDataDoesNotStartABatch) {
  session::ServerSession s;
  s.sent('Q');  // COPY ... FROM STDIN
  s.on_message('G', "");
  s.sent('d');
  s.sent('d');
  s.sent('c');
  s.on_message('C', "COPY 2\0"s);
  s.on_message('Z', "I");
  EXPECT_TRUE(s.idle());
}

TEST(ServerSession, InternalQueryAnswersAreDropped) {
  session::ServerSession s;
  s.sent_internal_query();
  s.sent('Q');
  EXPECT_FALSE(forwarded(s, 'C', "SET\0"s));
  EXPECT_FALSE(forwarded(s, 'S', "TimeZone\0UTC\0"s));
  EXPECT_EQ(*s.params().get("TimeZone"), "UTC");
  EXPECT_FALSE(forwarded(s, 'Z', "I"));
  EXPECT_TRUE(forwarded(s, 'T', ""));
  EXPECT_TRUE(forwarded(s, 'Z', "I"));
  EXPECT_TRUE(s.idle());
}

TEST(ServerSession, ErrorCancelsInjectedRepliesOfItsBatchOnly) {
  session::ServerSession s;
  s.injected_parse();  // batch 1: an injected Parse that will fail
  s.sent('B');
  s.sent('S');
  s.injected_parse();  // batch 2, after the Sync: its ParseComplete must still be dropped
  s.sent('B');
  s.sent('S');
  EXPECT_TRUE(forwarded(s, 'E', "SERROR\0\0"s));
  EXPECT_TRUE(forwarded(s, 'Z', "I"));
  EXPECT_FALSE(forwarded(s, '1'));
  EXPECT_TRUE(forwarded(s, '2'));
  EXPECT_TRUE(forwarded(s, 'Z', "I"));
}

TEST(ServerSession, DiscardAllForgetsPreparedStatements) {
  session::ServerSession s;
  s.statements().add(1, "PGC_1");
  s.sent('Q');
  auto v = s.on_message('C', "DISCARD ALL\0"s);
  EXPECT_TRUE(v.statements_reset);
  EXPECT_FALSE(s.statements().has(1));
}

TEST(ServerSession, APrepareOnlyBatchCanBeEndedByThePoolerWithoutTheClientSeeingIt) {
  session::ServerSession s;
  EXPECT_FALSE(s.only_prepares_open());  // nothing open
  s.sent('P');
  s.sent('D');
  s.sent('H');
  EXPECT_TRUE(s.only_prepares_open());
  s.on_message('1', "");
  s.sent_closing_sync();
  EXPECT_FALSE(s.only_prepares_open());
  EXPECT_TRUE(s.requests_in_flight());
  auto v = s.on_message('Z', "I");
  EXPECT_FALSE(v.forward);  // the pooler's Sync: its ReadyForQuery is not the client's
  EXPECT_TRUE(v.batch_done);
  EXPECT_TRUE(s.idle());
}

TEST(ServerSession, ABatchThatRanSomethingOrFailedIsNotPrepareOnly) {
  session::ServerSession ran;
  ran.sent('P');
  ran.sent('B');
  ran.sent('E');
  ran.sent('H');
  EXPECT_FALSE(ran.only_prepares_open());
  session::ServerSession failed;
  failed.sent('P');
  failed.sent('H');
  failed.on_message('E', "");
  EXPECT_FALSE(failed.only_prepares_open());  // the server skips to Sync: a Bind would be skipped too
  session::ServerSession in_transaction;
  in_transaction.sent('Q');
  in_transaction.on_message('Z', "T");
  in_transaction.sent('P');
  in_transaction.sent('H');
  EXPECT_FALSE(in_transaction.only_prepares_open());
}

TEST(ClientSession, NamedStatementsArePreparedOnDemandPerServer) {
  session::StatementRegistry reg;
  session::ClientSession c;
  session::ServerSession a, b;
  std::string parse, bind, sync;
  protocol::encode::parse(parse, "s1", "select $1", "\0\0"s);
  protocol::encode::bind(bind, "", "s1", "\0\0\0\0\0\0"s);
  protocol::encode::sync(sync);

  std::string wire = send(c, a, reg, parse);
  wire += send(c, a, reg, sync);
  auto out = split(wire);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].type, 'P');
  EXPECT_EQ(protocol::parse_parse(out[0].body)->name, "PGC_1");
  EXPECT_TRUE(forwarded(a, '1'));  // the client's own ParseComplete
  a.on_message('Z', "I");

  // on server b the statement does not exist yet: Parse is injected before Bind
  wire = send(c, b, reg, bind);
  wire += send(c, b, reg, sync);
  out = split(wire);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].type, 'P');
  EXPECT_EQ(out[1].type, 'B');
  EXPECT_EQ(protocol::parse_bind_head(out[1].body)->statement, "PGC_1");
  EXPECT_FALSE(forwarded(b, '1'));  // injected: dropped
  EXPECT_TRUE(forwarded(b, '2'));
  b.on_message('Z', "I");

  // and on a it exists already: Bind goes alone
  out = split(send(c, a, reg, bind));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, 'B');

  // another client preparing the same text shares the server statement
  session::ClientSession c2;
  std::string parse2;
  protocol::encode::parse(parse2, "other_name", "select $1", "\0\0"s);
  out = split(send(c2, a, reg, parse2));
  ASSERT_EQ(out.size(), 2u);  // Close + Parse again, so that the server answers ParseComplete
  EXPECT_EQ(out[0].type, 'C');
  EXPECT_EQ(out[1].type, 'P');
  EXPECT_EQ(protocol::parse_parse(out[1].body)->name, "PGC_1");

  // Close of a client's name never closes the shared server statement
  std::string close;
  protocol::encode::close(close, 'S', "s1");
  out = split(send(c, a, reg, close));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(protocol::parse_target(out[0].body)->name, "PGC_1");
  EXPECT_EQ(c.statements().find("s1"), nullptr);
}

TEST(ClientSession, EvictsLeastRecentlyUsedServerStatements) {
  session::StatementRegistry reg;
  session::ClientSession c;
  session::ServerSession s(2);
  for (int i = 0; i < 3; ++i) {
    std::string parse;
    protocol::encode::parse(parse, "s" + std::to_string(i), "select " + std::to_string(i), "\0\0"s);
    auto out = split(send(c, s, reg, parse));
    if (i < 2) {
      EXPECT_EQ(out.size(), 1u);
    } else {
      ASSERT_EQ(out.size(), 2u);
      EXPECT_EQ(out[0].type, 'C');
      EXPECT_EQ(protocol::parse_target(out[0].body)->name, "PGC_1");
    }
  }
  EXPECT_EQ(s.statements().size(), 2u);
}

TEST(ClientSession, UnnamedAndUnknownStatementsPassUnchanged) {
  session::StatementRegistry reg;
  session::ClientSession c;
  session::ServerSession s;
  std::string parse, bind;
  protocol::encode::parse(parse, "", "select 1", "\0\0"s);
  protocol::encode::bind(bind, "", "never_prepared", "\0\0\0\0\0\0"s);
  EXPECT_EQ(send(c, s, reg, parse), parse);
  EXPECT_EQ(send(c, s, reg, bind), bind);
}

namespace {
// Session pooling: what the client sends, as follow_sent sees it (the body after the length).
void follow(session::ClientSession& c, const std::string& frame, std::string_view sql = {}) {
  auto m = split(frame);
  ASSERT_EQ(m.size(), 1u);
  c.follow_sent(m[0].type, m[0].body, sql);
}

std::string parse_msg(std::string_view name, std::string_view sql) {
  std::string out;
  protocol::encode::parse(out, name, sql, "\0\0"s);
  return out;
}
}  // namespace

TEST(ClientSessionFollowingServerNames, ANameCountsOnlyOnceTheServerAnsweredItsParse) {
  session::ClientSession c;
  follow(c, parse_msg("", "SELECT 0"));  // unnamed: answered first, in turn
  follow(c, parse_msg("a", "SELECT 1"));
  EXPECT_EQ(c.statements().find("a"), nullptr);
  c.follow_reply('1');
  EXPECT_EQ(c.statements().find("a"), nullptr);
  c.follow_reply('1');
  ASSERT_NE(c.statements().find("a"), nullptr);
  EXPECT_EQ(c.statements().find("a")->query, "SELECT 1");
}

TEST(ClientSessionFollowingServerNames, AParseTheServerRefusedLeavesTheNameUnknown) {
  session::ClientSession c;
  follow(c, parse_msg("a", "SELECT 1"));
  c.follow_reply('1');
  c.follow_reply('Z');
  follow(c, parse_msg("a", "SELECT 2"));  // the server says the name is taken
  c.follow_reply('Z');                     // no ParseComplete before the batch ended
  EXPECT_EQ(c.statements().find("a"), nullptr);
  c.follow_reply('1');  // a stray reply confirms nothing
  EXPECT_EQ(c.statements().find("a"), nullptr);
}

TEST(ClientSessionFollowingServerNames, CloseAndDeallocateForgetTheNameAtOnce) {
  session::ClientSession c;
  for (auto name : {"a", "b"}) {
    follow(c, parse_msg(name, "SELECT 1"));
    c.follow_reply('1');
  }
  std::string close;
  protocol::encode::close(close, 'S', "a");
  follow(c, close);
  EXPECT_EQ(c.statements().find("a"), nullptr);
  std::string q;
  protocol::encode::query(q, "DEALLOCATE b");
  follow(c, q, "DEALLOCATE b");
  EXPECT_EQ(c.statements().find("b"), nullptr);
}

TEST(Params, SyncSqlSetsOnlyDifferences) {
  session::TrackedNames tracked;
  EXPECT_EQ(tracked.canonical("datestyle"), "DateStyle");
  EXPECT_EQ(tracked.canonical("work_mem"), "");
  session::ParamMap client, server;
  client.set("TimeZone", "Asia/Tokyo");
  client.set("DateStyle", "ISO, MDY");
  server.set("TimeZone", "UTC");
  server.set("DateStyle", "ISO, MDY");
  EXPECT_EQ(session::sync_sql(tracked, client, server), "SET TimeZone TO 'Asia/Tokyo';");
  server.set("TimeZone", "Asia/Tokyo");
  EXPECT_EQ(session::sync_sql(tracked, client, server), "");
  client.set("application_name", "it's");
  EXPECT_EQ(session::sync_sql(tracked, client, server), "SET application_name TO 'it''s';");
}

TEST(Params, EqualMapsShareOneStorageUntilOneChanges) {
  session::ParamMap a, b;
  a.set("TimeZone", "UTC");
  a.set("DateStyle", "ISO, MDY");
  b.set("TimeZone", "UTC");
  EXPECT_FALSE(b.share_if_equal(a));  // different contents
  b.set("DateStyle", "ISO, MDY");
  EXPECT_FALSE(b.shares_storage_with(a));
  auto version = b.version();
  EXPECT_TRUE(b.share_if_equal(a));
  EXPECT_TRUE(b.shares_storage_with(a));
  EXPECT_EQ(b.version(), version);  // same values: nothing changed for a server to follow
  EXPECT_EQ(b.fingerprint(), a.fingerprint());

  EXPECT_FALSE(b.set("TimeZone", "UTC"));  // no change, no copy
  EXPECT_TRUE(b.shares_storage_with(a));
  EXPECT_TRUE(b.set("TimeZone", "Asia/Tokyo"));  // copy on write: a keeps its value
  EXPECT_FALSE(b.shares_storage_with(a));
  EXPECT_EQ(*a.get("TimeZone"), "UTC");
  EXPECT_EQ(*b.get("TimeZone"), "Asia/Tokyo");
  EXPECT_NE(b.fingerprint(), a.fingerprint());

  session::ParamMap c = a;  // a copy shares too, and a set() on the original leaves it alone
  EXPECT_TRUE(c.shares_storage_with(a));
  a.set("application_name", "x");
  EXPECT_EQ(c.get("application_name"), nullptr);
  EXPECT_EQ(c.entries().size(), 2u);
  EXPECT_EQ(a.entries().size(), 3u);
}

TEST(Prepared, DeallocateTarget) {
  EXPECT_EQ(session::deallocate_target("DEALLOCATE _pg3_0"), "_pg3_0");
  EXPECT_EQ(session::deallocate_target("  deallocate prepare S1 ;"), "s1");
  EXPECT_EQ(session::deallocate_target("DEALLOCATE \"Mixed\"\"Q\""), "Mixed\"Q");
  EXPECT_EQ(session::deallocate_target("DEALLOCATE ALL"), "");
  EXPECT_EQ(session::deallocate_target("DEALLOCATE a; select 1"), "");
  EXPECT_EQ(session::deallocate_target("select 1"), "");
  EXPECT_EQ(session::deallocate_target("DEALLOCATEx"), "");
}

TEST(ClientSession, SqlDeallocateOfAProtocolNameTargetsTheServerStatement) {
  session::StatementRegistry reg;
  session::ClientSession c;
  session::ServerSession s;
  std::string parse, dealloc;
  protocol::encode::parse(parse, "_pg3_0", "select 1", "\0\0"s);
  send(c, s, reg, parse);
  protocol::encode::query(dealloc, "DEALLOCATE _pg3_0");
  auto out = split(send(c, s, reg, dealloc));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(*protocol::parse_query(out[0].body).operator->(), "DEALLOCATE \"PGC_1\"");
  EXPECT_EQ(c.statements().find("_pg3_0"), nullptr);
  EXPECT_FALSE(s.statements().has(1));
  // a name the client never prepared goes to the server unchanged (and fails there)
  std::string other;
  protocol::encode::query(other, "DEALLOCATE nope");
  EXPECT_EQ(send(c, s, reg, other), other);
}
