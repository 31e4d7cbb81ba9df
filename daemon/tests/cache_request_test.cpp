// Unit tests of the query cache's wire-level pieces: which client batches it may answer,
// what of a server reply it may store, the breaker, and the client's own bypass switch.
#include <gtest/gtest.h>

#include <string>

#include "cache/breaker.h"
#include "cache/reply_capture.h"
#include "cache/request.h"
#include "cache/session_switch.h"
#include "protocol/messages.h"

using namespace pgcohere;
using namespace pgcohere::cache;

namespace {
void i16(std::string& out, int v) {
  out.push_back(char((v >> 8) & 0xff));
  out.push_back(char(v & 0xff));
}
void i32(std::string& out, int32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(char((v >> s) & 0xff));
}

// Bind body after portal and statement: formats, values (nullopt = NULL), result formats.
std::string bind_rest(std::vector<int> formats, std::vector<std::optional<std::string>> values,
                      std::vector<int> results) {
  std::string r;
  i16(r, static_cast<int>(formats.size()));
  for (int f : formats) i16(r, f);
  i16(r, static_cast<int>(values.size()));
  for (auto& v : values) {
    if (!v) {
      i32(r, -1);
      continue;
    }
    i32(r, static_cast<int32_t>(v->size()));
    r += *v;
  }
  i16(r, static_cast<int>(results.size()));
  for (int f : results) i16(r, f);
  return r;
}

std::string execute(std::string_view portal, int32_t max_rows) {
  std::string body(portal);
  body.push_back('\0');
  i32(body, max_rows);
  std::string out(1, 'E');
  i32(out, static_cast<int32_t>(body.size() + 4));
  return out + body;
}

std::string unnamed_batch(std::string_view sql, std::vector<std::optional<std::string>> values, bool describe = true) {
  std::string out;
  protocol::encode::parse(out, "", sql, std::string("\0\0", 2));
  protocol::encode::bind(out, "", "", bind_rest({0}, std::move(values), {1}));
  if (describe) protocol::encode::describe(out, 'P', "");
  out += execute("", 0);
  protocol::encode::sync(out);
  return out;
}

const StatementLookup kNoNames = [](std::string_view) -> std::optional<NamedStatement> { return std::nullopt; };
}  // namespace

TEST(CacheRequest, ASimpleQueryIsRecognizedWithItsLength) {
  std::string q;
  protocol::encode::query(q, "SELECT * FROM t");
  std::string data = q + "trailing bytes of the next message";
  auto r = recognize(data, kNoNames);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->protocol, Request::Protocol::simple);
  EXPECT_EQ(r->sql, "SELECT * FROM t");
  EXPECT_EQ(r->shape, "Q");
  EXPECT_EQ(r->consumed, q.size());
}

TEST(CacheRequest, AnIncompleteMessageIsNotRecognizedYet) {
  std::string q;
  protocol::encode::query(q, "SELECT * FROM t");
  for (std::size_t n = 0; n < q.size(); ++n) EXPECT_FALSE(recognize(q.substr(0, n), kNoNames)) << n;
}

TEST(CacheRequest, AnUnnamedExtendedBatchCarriesParametersAndFormats) {
  std::string data = unnamed_batch("SELECT * FROM t WHERE id = $1", {std::string("42")});
  auto r = recognize(data, kNoNames);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->protocol, Request::Protocol::extended);
  EXPECT_EQ(r->shape, "PBDES");
  EXPECT_EQ(r->sql, "SELECT * FROM t WHERE id = $1");
  ASSERT_EQ(r->params.size(), 1u);
  EXPECT_EQ(*r->params[0], "42");
  EXPECT_EQ(r->param_formats, std::vector<int16_t>{0});
  EXPECT_EQ(r->result_formats, std::vector<int16_t>{1});
  EXPECT_EQ(r->consumed, data.size());
}

TEST(CacheRequest, NullAndEmptyParametersStayDistinct) {
  auto a = recognize(unnamed_batch("SELECT $1", {std::nullopt}), kNoNames);
  auto b = recognize(unnamed_batch("SELECT $1", {std::string()}), kNoNames);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(a->params[0].has_value());
  ASSERT_TRUE(b->params[0].has_value());
  EXPECT_EQ(*b->params[0], "");
}

TEST(CacheRequest, ABatchWithoutDescribeHasItsOwnShape) {
  auto r = recognize(unnamed_batch("SELECT 1 FROM t", {}, false), kNoNames);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->shape, "PBES");
}

TEST(CacheRequest, ANamedStatementIsResolvedThroughTheClientsStatements) {
  std::string data;
  protocol::encode::bind(data, "", "s1", bind_rest({}, {std::string("7")}, {}));
  data += execute("", 0);
  protocol::encode::sync(data);
  EXPECT_FALSE(recognize(data, kNoNames));
  auto r = recognize(data, [](std::string_view name) -> std::optional<NamedStatement> {
    if (name != "s1") return std::nullopt;
    return NamedStatement{"SELECT * FROM t WHERE id = $1", std::string_view("\0\1\0\0\0\x17", 6)};
  });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->shape, "BES");
  EXPECT_EQ(r->sql, "SELECT * FROM t WHERE id = $1");
  EXPECT_EQ(r->param_types.size(), 6u);
}

TEST(CacheRequest, BatchesThatOutliveOrSplitTheirResultAreNotRecognized) {
  // A named Parse (the statement outlives the batch), a row limit (a suspended portal), a
  // named portal, two Executes, and a batch that ends in Flush are left to the normal path.
  std::string named_parse;
  protocol::encode::parse(named_parse, "s1", "SELECT 1", std::string("\0\0", 2));
  protocol::encode::bind(named_parse, "", "s1", bind_rest({}, {}, {}));
  named_parse += execute("", 0);
  protocol::encode::sync(named_parse);
  EXPECT_FALSE(recognize(named_parse, kNoNames));

  std::string limited;
  protocol::encode::parse(limited, "", "SELECT 1", std::string("\0\0", 2));
  protocol::encode::bind(limited, "", "", bind_rest({}, {}, {}));
  limited += execute("", 10);
  protocol::encode::sync(limited);
  EXPECT_FALSE(recognize(limited, kNoNames));

  std::string portal;
  protocol::encode::parse(portal, "", "SELECT 1", std::string("\0\0", 2));
  protocol::encode::bind(portal, "p1", "", bind_rest({}, {}, {}));
  portal += execute("p1", 0);
  protocol::encode::sync(portal);
  EXPECT_FALSE(recognize(portal, kNoNames));

  std::string twice;
  protocol::encode::parse(twice, "", "SELECT 1", std::string("\0\0", 2));
  protocol::encode::bind(twice, "", "", bind_rest({}, {}, {}));
  twice += execute("", 0) + execute("", 0);
  protocol::encode::sync(twice);
  EXPECT_FALSE(recognize(twice, kNoNames));

  std::string flushed;
  protocol::encode::parse(flushed, "", "SELECT 1", std::string("\0\0", 2));
  protocol::encode::bind(flushed, "", "", bind_rest({}, {}, {}));
  flushed += execute("", 0);
  protocol::encode::flush(flushed);
  EXPECT_FALSE(recognize(flushed, kNoNames));
}

TEST(CacheRequest, AMalformedBindIsLeftToTheNormalPathsError) {
  std::string data;
  protocol::encode::parse(data, "", "SELECT 1", std::string("\0\0", 2));
  protocol::encode::bind(data, "", "", std::string("\0\1\0\7", 4));  // format 7 does not exist
  data += execute("", 0);
  protocol::encode::sync(data);
  EXPECT_FALSE(recognize(data, kNoNames));
}

namespace {
std::string message(char type, std::string_view body) {
  std::string out(1, type);
  i32(out, static_cast<int32_t>(body.size() + 4));
  return out + std::string(body);
}
}  // namespace

TEST(ReplyCapture, StoresACleanResultUpToReadyForQueryAndNothingAfter) {
  ReplyCapture c(1024);
  std::string t = message('T', "rowdesc"), d = message('D', "row"), cc = message('C', std::string("SELECT 1\0", 9));
  c.add('T', t);
  c.add('D', d);
  c.add('C', cc);
  EXPECT_FALSE(c.done());
  c.add('Z', message('Z', "I"));
  ASSERT_EQ(c.state(), ReplyCapture::State::complete);
  c.add('D', message('D', "next request's row"));
  EXPECT_EQ(c.bytes(), t + d + cc);
}

TEST(ReplyCapture, RefusesErrorsNoticesOpenTransactionsAndOversizedResults) {
  auto run = [](std::size_t max, std::vector<std::pair<char, std::string>> msgs) {
    ReplyCapture c(max);
    for (auto& [type, body] : msgs) c.add(type, message(type, body));
    return c.state();
  };
  std::string cc("SELECT 1\0", 9);
  EXPECT_EQ(run(1024, {{'T', "x"}, {'C', cc}, {'Z', "I"}}), ReplyCapture::State::complete);
  EXPECT_EQ(run(1024, {{'E', "boom"}, {'Z', "I"}}), ReplyCapture::State::refused);
  EXPECT_EQ(run(1024, {{'N', "notice"}, {'T', "x"}, {'C', cc}, {'Z', "I"}}), ReplyCapture::State::refused);
  EXPECT_EQ(run(1024, {{'T', "x"}, {'C', cc}, {'Z', "T"}}), ReplyCapture::State::refused);
  EXPECT_EQ(run(1024, {{'T', "x"}, {'Z', "I"}}), ReplyCapture::State::refused);
  EXPECT_EQ(run(1024, {{'T', "x"}, {'C', cc}, {'T', "y"}, {'C', cc}, {'Z', "I"}}), ReplyCapture::State::refused);
  EXPECT_EQ(run(20, {{'T', "x"}, {'D', std::string(40, 'r')}, {'C', cc}, {'Z', "I"}}),
            ReplyCapture::State::refused);
  ReplyCapture streamed(1 << 20);
  streamed.add('T', message('T', "x"));
  streamed.add_fragment();
  EXPECT_EQ(streamed.state(), ReplyCapture::State::refused);
}

TEST(Breaker, OpensAfterConsecutiveFailuresAndClosesWhenAProbeAnswers) {
  using namespace std::chrono_literals;
  Breaker b(3, 100ms, 500ms);
  Breaker::Clock::time_point t0{};
  b.failed(t0);
  b.failed(t0);
  b.succeeded(t0);  // a success in between resets the count
  b.failed(t0 + 200ms);
  b.failed(t0 + 200ms);
  EXPECT_FALSE(b.open());
  b.failed(t0 + 200ms);
  EXPECT_TRUE(b.open());
  EXPECT_FALSE(b.probe_due(t0 + 300ms));
  EXPECT_TRUE(b.probe_due(t0 + 800ms));
  EXPECT_FALSE(b.probe_due(t0 + 900ms));  // one probe per period
  b.probe_answered();
  EXPECT_FALSE(b.open());
  EXPECT_EQ(b.times_opened(), 1u);
}

TEST(Breaker, ARedisDownFromTheStartOpensItAfterTheFailures) {
  using namespace std::chrono_literals;
  Breaker b(3, 100ms, 500ms);
  auto now = Breaker::Clock::now();
  for (int i = 0; i < 3; ++i) b.failed(now);
  EXPECT_TRUE(b.open());
}

TEST(Breaker, TimeoutsOfOneStallStayClosedWhileSomethingAnsweredWithinTheQuietSpan) {
  // A starved machine: the lookups in flight time out together, then the next ones answer.
  using namespace std::chrono_literals;
  Breaker b(3, 100ms, 500ms);
  Breaker::Clock::time_point t0 = Breaker::Clock::now();
  b.succeeded(t0);
  for (int i = 0; i < 50; ++i) b.failed(t0 + 30ms);
  EXPECT_FALSE(b.open());
  b.succeeded(t0 + 40ms);
  for (int i = 0; i < 2; ++i) b.failed(t0 + 200ms);
  EXPECT_FALSE(b.open());  // the count started again at the success
  b.failed(t0 + 200ms);
  EXPECT_TRUE(b.open());  // three in a row and nothing answered for 160 ms: Redis is gone
}

TEST(SessionSwitch, SetAndResetOfCacheBypassAreRecognizedFromTheParseTree) {
  auto sw = [](std::string sql) {
    std::string q;
    protocol::encode::query(q, sql);
    return session_switch(q);
  };
  auto on = sw("SET pgcohere.cache_bypass = on");
  ASSERT_TRUE(on);
  EXPECT_TRUE(on->bypass);
  EXPECT_EQ(on->command_tag, "SET");
  EXPECT_TRUE(sw("  set PGCOHERE.CACHE_BYPASS to true;")->bypass);
  EXPECT_FALSE(sw("SET pgcohere.cache_bypass = off")->bypass);
  EXPECT_FALSE(sw("SET pgcohere.cache_bypass = 0")->bypass);
  auto reset = sw("RESET pgcohere.cache_bypass");
  ASSERT_TRUE(reset);
  EXPECT_FALSE(reset->bypass);
  EXPECT_EQ(reset->command_tag, "RESET");
  EXPECT_FALSE(sw("SET search_path = public"));
  EXPECT_FALSE(sw("SET LOCAL pgcohere.cache_bypass = on"));  // only in a transaction: not ours
  EXPECT_FALSE(sw("SET pgcohere.cache_bypass = maybe"));
  EXPECT_FALSE(sw("SET pgcohere.cache_bypass = on; SELECT 1"));
  EXPECT_FALSE(sw("SELECT 'SET pgcohere.cache_bypass = on'"));
}
