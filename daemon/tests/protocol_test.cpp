// Unit tests of the pure PostgreSQL wire codecs: framing, startup packets, message bodies.
#include <gtest/gtest.h>

#include <string>

#include "protocol/frame.h"
#include "protocol/messages.h"
#include "protocol/ssl_negotiation.h"

using namespace pgcohere::protocol;
using namespace std::string_literals;

namespace {
std::string msg(char type, std::string_view body) {
  std::string out;
  out.push_back(type);
  uint32_t len = static_cast<uint32_t>(body.size() + 4);
  out.push_back(char(len >> 24));
  out.push_back(char(len >> 16));
  out.push_back(char(len >> 8));
  out.push_back(char(len));
  out.append(body);
  return out;
}
}  // namespace

TEST(FrameDecoder, SplitsConcatenatedMessagesAndWaitsForPartialOnes) {
  std::string a;
  encode::query(a, "select 1");
  encode::sync(a);
  FrameDecoder d;
  // every prefix shorter than the first message is "need more"
  for (size_t n = 0; n < 14; ++n)
    EXPECT_EQ(d.next(std::string_view(a).substr(0, n)).kind, Frame::Kind::need_more) << n;
  auto f = d.next(a);
  ASSERT_EQ(f.kind, Frame::Kind::message);
  EXPECT_EQ(f.type, 'Q');
  EXPECT_EQ(*parse_query(f.body).operator->(), "select 1");
  auto g = d.next(std::string_view(a).substr(f.consumed));
  ASSERT_EQ(g.kind, Frame::Kind::message);
  EXPECT_EQ(g.type, 'S');
  EXPECT_EQ(f.consumed + g.consumed, a.size());
}

TEST(FrameDecoder, RejectsBadAndOversizedLengths) {
  FrameDecoder d(FrameDecoder::Side::frontend, 1000);
  std::string bad = "Q\0\0\0\2"s;
  EXPECT_EQ(d.next(bad).kind, Frame::Kind::error);
  auto big = msg('Q', std::string(2000, 'x'));
  auto f = d.next(std::string_view(big).substr(0, 5));
  EXPECT_EQ(f.kind, Frame::Kind::error);
  EXPECT_NE(f.error.find("max_packet_size"), std::string::npos);
  std::string neg = "Q\xff\xff\xff\xff"s;
  EXPECT_EQ(FrameDecoder().next(neg).kind, Frame::Kind::error);
}

TEST(FrameDecoder, StreamsLongDataRowsInPieces) {
  FrameDecoder d(FrameDecoder::Side::backend, kDefaultMaxPacketSize, 100);
  auto row = msg('D', std::string(1000, 'r'));
  auto z = msg('Z', "I");
  std::string all = row + z;
  // first read: 300 bytes
  auto f = d.next(std::string_view(all).substr(0, 300));
  ASSERT_EQ(f.kind, Frame::Kind::passthrough);
  EXPECT_TRUE(f.first_piece);
  EXPECT_EQ(f.type, 'D');
  EXPECT_EQ(f.consumed, 300u);
  EXPECT_TRUE(d.streaming());
  // the rest of the row plus the ReadyForQuery
  auto g = d.next(std::string_view(all).substr(300));
  ASSERT_EQ(g.kind, Frame::Kind::passthrough);
  EXPECT_FALSE(g.first_piece);
  EXPECT_EQ(g.consumed, row.size() - 300);
  EXPECT_FALSE(d.streaming());
  auto h = d.next(std::string_view(all).substr(row.size()));
  ASSERT_EQ(h.kind, Frame::Kind::message);
  EXPECT_EQ(h.type, 'Z');
  // short messages of other types are never streamed
  FrameDecoder e(FrameDecoder::Side::backend, kDefaultMaxPacketSize, 100);
  auto t = msg('T', std::string(1000, 't'));
  EXPECT_EQ(e.next(std::string_view(t).substr(0, 300)).kind, Frame::Kind::need_more);
  // from a client, 'D' is Describe: never streamed
  FrameDecoder c(FrameDecoder::Side::frontend, kDefaultMaxPacketSize, 100);
  EXPECT_EQ(c.next(std::string_view(row).substr(0, 300)).kind, Frame::Kind::need_more);
  auto copy = msg('d', std::string(1000, 'c'));
  EXPECT_EQ(c.next(std::string_view(copy).substr(0, 300)).kind, Frame::Kind::passthrough);
}

TEST(Startup, ParsesStartupMessage) {
  std::string p;
  encode::startup_message(p, {{"user", "alice"}, {"database", "app"}, {"application_name", "x"}});
  auto f = next_startup_frame(p);
  ASSERT_EQ(f.kind, StartupFrame::Kind::packet);
  EXPECT_EQ(f.consumed, p.size());
  auto s = parse_startup_packet(f.packet);
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->kind, StartupPacket::Kind::startup);
  EXPECT_EQ(s->version, kProtocolV3);
  ASSERT_EQ(s->params.size(), 3u);
  EXPECT_EQ(*s->find("user"), "alice");
  EXPECT_EQ(*s->find("database"), "app");
  EXPECT_EQ(s->find("nope"), nullptr);
}

TEST(Startup, ParsesSslAndCancelRequests) {
  std::string ssl;
  encode::ssl_request(ssl);
  auto s = parse_startup_packet(ssl);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->kind, StartupPacket::Kind::ssl_request);
  std::string c;
  encode::cancel_request(c, 1234, -99);
  auto cr = parse_startup_packet(c);
  ASSERT_TRUE(cr);
  EXPECT_EQ(cr->kind, StartupPacket::Kind::cancel_request);
  EXPECT_EQ(cr->cancel_pid, 1234);
  EXPECT_EQ(cr->cancel_key, -99);
}

TEST(Startup, RejectsMalformedPackets) {
  EXPECT_EQ(next_startup_frame("\0\0\0\4xxxx"s).kind, StartupFrame::Kind::error);
  EXPECT_EQ(next_startup_frame("\0\1\0\0"s).kind, StartupFrame::Kind::error);  // 65536 > 10000
  EXPECT_EQ(next_startup_frame("\0\0\0"s).kind, StartupFrame::Kind::need_more);
  // protocol 2
  std::string v2 = "\0\0\0\x08\0\2\0\0"s;
  EXPECT_FALSE(parse_startup_packet(v2));
  // unterminated parameter list
  std::string bad = "\0\0\0\x0d\0\3\0\0user"s;
  bad.push_back('\0');
  EXPECT_FALSE(parse_startup_packet(bad));
  // a cancel request with a missing key
  std::string cr = "\0\0\0\x0c\x04\xd2\x16\x2e\0\0\0\1"s;
  EXPECT_FALSE(parse_startup_packet(cr));
}

TEST(Backend, ParsesStatusMessages) {
  std::string out;
  encode::parameter_status(out, "TimeZone", "UTC");
  FrameDecoder d;
  auto f = d.next(out);
  auto ps = parse_parameter_status(f.body);
  ASSERT_TRUE(ps);
  EXPECT_EQ(ps->name, "TimeZone");
  EXPECT_EQ(ps->value, "UTC");
  std::string k;
  encode::backend_key_data(k, 42, 7);
  auto kd = parse_backend_key_data(d.next(k).body);
  ASSERT_TRUE(kd);
  EXPECT_EQ(kd->pid, 42);
  EXPECT_EQ(kd->key, 7);
  std::string z;
  encode::ready_for_query(z, 'T');
  EXPECT_EQ(parse_ready_for_query(d.next(z).body).value(), 'T');
  EXPECT_FALSE(parse_ready_for_query("X"));
  EXPECT_FALSE(parse_ready_for_query(""));
}

TEST(Backend, ParsesErrorFields) {
  std::string e;
  encode::error_response(e, "FATAL", "08P01", "boom");
  auto f = FrameDecoder().next(e);
  ASSERT_EQ(f.type, 'E');
  auto ef = parse_error_fields(f.body);
  ASSERT_TRUE(ef);
  EXPECT_EQ(ef->get('S'), "FATAL");
  EXPECT_EQ(ef->get('C'), "08P01");
  EXPECT_EQ(ef->get('M'), "boom");
  EXPECT_EQ(ef->get('D'), "");
  EXPECT_FALSE(parse_error_fields("Sx"s));
}

TEST(Frontend, ParsesExtendedQueryMessages) {
  std::string out;
  std::string types("\0\1\0\0\0\x17", 6);
  encode::parse(out, "s1", "select $1", types);
  encode::bind(out, "", "s1", std::string("\0\0\0\0\0\0", 6));
  encode::describe(out, 'S', "s1");
  encode::close(out, 'P', "");
  FrameDecoder d;
  std::string_view in = out;
  auto p = d.next(in);
  ASSERT_EQ(p.type, 'P');
  auto pm = parse_parse(p.body);
  ASSERT_TRUE(pm) << pm.error();
  EXPECT_EQ(pm->name, "s1");
  EXPECT_EQ(pm->query, "select $1");
  EXPECT_EQ(pm->param_types, types);
  in.remove_prefix(p.consumed);
  auto b = d.next(in);
  auto bh = parse_bind_head(b.body);
  ASSERT_TRUE(bh);
  EXPECT_EQ(bh->portal, "");
  EXPECT_EQ(bh->statement, "s1");
  EXPECT_EQ(bh->rest.size(), 6u);
  in.remove_prefix(b.consumed);
  auto ds = d.next(in);
  auto t = parse_target(ds.body);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, 'S');
  EXPECT_EQ(t->name, "s1");
  in.remove_prefix(ds.consumed);
  auto c = parse_target(d.next(in).body);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, 'P');
  // Parse with a parameter count that does not match the bytes
  EXPECT_FALSE(parse_parse("a\0q\0\0\2\0\0\0\1"s));
  EXPECT_FALSE(parse_target("X\0"s));
}

TEST(Encode, RebindingKeepsTheRestOfBind) {
  std::string original;
  encode::bind(original, "p", "client_stmt", "REST");
  auto head = parse_bind_head(FrameDecoder().next(original).body);
  ASSERT_TRUE(head);
  std::string rewritten;
  encode::bind(rewritten, head->portal, "PGC_7", head->rest);
  auto h2 = parse_bind_head(FrameDecoder().next(rewritten).body);
  ASSERT_TRUE(h2);
  EXPECT_EQ(h2->statement, "PGC_7");
  EXPECT_EQ(h2->rest, "REST");
}

TEST(Encode, QuotesLiterals) {
  EXPECT_EQ(quote_literal("UTC"), "'UTC'");
  EXPECT_EQ(quote_literal("it's"), "'it''s'");
  EXPECT_EQ(quote_literal("a\\b"), "E'a\\\\b'");
}

TEST(Startup, DecodesSslAndGssEncRequestsAndRefusesTrailingBytes) {
  std::string ssl;
  encode::ssl_request(ssl);
  ASSERT_EQ(ssl, "\0\0\0\x08\x04\xd2\x16\x2f"s);  // length 8, code 1234.5679
  auto f = next_startup_frame(ssl + "Q"s);  // a byte sent ahead of our answer stays unread
  ASSERT_EQ(f.kind, StartupFrame::Kind::packet);
  EXPECT_EQ(f.consumed, 8u);
  std::string gss = "\0\0\0\x08\x04\xd2\x16\x30"s;  // code 1234.5680
  auto g = parse_startup_packet(gss);
  ASSERT_TRUE(g) << g.error();
  EXPECT_EQ(g->kind, StartupPacket::Kind::gssenc_request);
  EXPECT_FALSE(parse_startup_packet("\0\0\0\x0c\x04\xd2\x16\x2f\0\0\0\0"s));  // SSLRequest with a body
  EXPECT_FALSE(parse_startup_packet("\0\0\0\x0c\x04\xd2\x16\x30\0\0\0\0"s));  // GSSENCRequest with a body
}

TEST(SslNegotiation, ClientSslModesMeanWhatPgBouncerSays) {
  EXPECT_EQ(parse_ssl_mode("verify-full"), SslMode::verify_full);
  EXPECT_EQ(parse_ssl_mode("Require"), std::nullopt);  // the config lowercases before
  EXPECT_EQ(ssl_mode_name(SslMode::verify_ca), "verify-ca");
  // disable: a client's SSLRequest is declined, and nobody needs TLS.
  EXPECT_EQ(answer_ssl_request(SslMode::disable, false), 'N');
  EXPECT_FALSE(client_tls_required(SslMode::disable, false));
  // allow and prefer: TLS when the client asks, plain text otherwise.
  for (auto m : {SslMode::allow, SslMode::prefer}) {
    EXPECT_EQ(answer_ssl_request(m, false), 'S');
    EXPECT_FALSE(client_tls_required(m, false));
    EXPECT_FALSE(client_certificate_required(m));
  }
  // require: plain text is refused; a certificate is not asked for.
  EXPECT_TRUE(client_tls_required(SslMode::require, false));
  EXPECT_FALSE(client_certificate_required(SslMode::require));
  // verify-ca and verify-full: TLS with a certificate signed by client_tls_ca_file.
  for (auto m : {SslMode::verify_ca, SslMode::verify_full}) {
    EXPECT_TRUE(client_tls_required(m, false));
    EXPECT_TRUE(client_certificate_required(m));
  }
  // The Unix socket has no TLS, as in PostgreSQL, whatever the mode.
  EXPECT_EQ(answer_ssl_request(SslMode::require, true), 'N');
  EXPECT_FALSE(client_tls_required(SslMode::verify_full, true));
}

TEST(SslNegotiation, ServerAnswersAreFollowedPerServerSslMode) {
  using K = ServerTlsStep::Kind;
  EXPECT_FALSE(server_tls_requested(SslMode::disable, false));
  EXPECT_TRUE(server_tls_requested(SslMode::prefer, false));
  EXPECT_TRUE(server_tls_requested(SslMode::allow, false));
  EXPECT_FALSE(server_tls_requested(SslMode::verify_full, true));  // a Unix socket: no SSLRequest
  EXPECT_EQ(on_ssl_answer(SslMode::prefer, 'S').kind, K::handshake);
  EXPECT_EQ(on_ssl_answer(SslMode::prefer, 'N').kind, K::plain);
  EXPECT_EQ(on_ssl_answer(SslMode::allow, 'N').kind, K::plain);
  auto refused = on_ssl_answer(SslMode::require, 'N');
  EXPECT_EQ(refused.kind, K::fail);
  EXPECT_EQ(refused.error, "server refused TLS (server_tls_sslmode = require)");
  EXPECT_EQ(on_ssl_answer(SslMode::verify_full, 'N').kind, K::fail);
  EXPECT_EQ(on_ssl_answer(SslMode::prefer, 'E').kind, K::fail);
  EXPECT_EQ(on_ssl_answer(SslMode::prefer, 'X').error, "unexpected answer to SSLRequest from server");
  EXPECT_FALSE(server_certificate_checked(SslMode::require));
  EXPECT_TRUE(server_certificate_checked(SslMode::verify_ca));
  EXPECT_FALSE(server_host_checked(SslMode::verify_ca));
  EXPECT_TRUE(server_host_checked(SslMode::verify_full));
}
