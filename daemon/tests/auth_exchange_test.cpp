// ClientAuth and ServerAuth: the pooler's two password exchanges, played against each
// other, and ServerAuth against a real PostgreSQL when PGCOHERE_TEST_PG=host:port is set
// (roles alice/pencil with SCRAM and dave/secret1 with md5; see the test for the setup).
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>

#include "auth/exchange.h"
#include "auth/md5.h"

using namespace pgcohere::auth;

namespace {

const char* kAliceSecret =
    "SCRAM-SHA-256$4096:39Uo3dhfoRqcZuwdOYYEfA==$fbOM6icxrrFrD2qeCVctvhJUPJmayPNGEnHeAe1dhJA=:"
    "4PzbjXW4yZAHhFVhPXBHV6louikr9xrUwKJriIYgSTU=";

UserList users() {
  return parse_userlist(std::string("\"alice\" \"") + kAliceSecret + "\"\n" +
                        "\"dave\" \"md58b4629c655965ca7d17c5d830b5d6fa2\"\n"
                        "\"plainuser\" \"pw\"\n");
}

// Runs a client-facing exchange against a ServerAuth playing the client. Returns true on
// success; `last` receives the final client step.
bool play(ClientAuth& front, ServerAuth& client, ClientAuth::Step* last = nullptr) {
  ClientAuth::Step step = front.begin();
  for (int i = 0; i < 6; ++i) {
    if (last) *last = step;
    if (step.state == ClientAuth::State::failure) return false;
    if (!step.send) return false;
    ServerAuth::Step reply = client.on_request(step.send->code, step.send->data);
    if (step.state == ClientAuth::State::success) {
      if (step.send->code == AuthCode::sasl_final) {
        if (!reply.error.empty()) return false;
        reply = client.on_request(AuthCode::ok, "");
      }
      return reply.done;
    }
    if (!reply.error.empty() || !reply.send) return false;
    step = front.on_password_message(*reply.send);
  }
  return false;
}

ServerCredentials password_creds(std::string user, std::string pw) {
  ServerCredentials c;
  c.user = std::move(user);
  c.password = std::move(pw);
  return c;
}

}  // namespace

TEST(ClientAuth, TrustNeedsNoPassword) {
  ClientAuth a("trust", nullptr, "anyone");
  auto s = a.begin();
  EXPECT_EQ(s.state, ClientAuth::State::success);
  EXPECT_EQ(s.send->code, AuthCode::ok);
}

TEST(ClientAuth, Md5AgainstHashAndPlainEntries) {
  UserList u = users();
  ClientAuth a("md5", &u, "dave");
  ServerAuth c(password_creds("dave", "secret1"));
  EXPECT_TRUE(play(a, c));
  EXPECT_EQ(a.credentials().md5_hash, "md58b4629c655965ca7d17c5d830b5d6fa2");

  ClientAuth b("md5", &u, "plainuser");
  ServerAuth d(password_creds("plainuser", "pw"));
  EXPECT_TRUE(play(b, d));
  EXPECT_EQ(b.credentials().password, "pw");
}

TEST(ClientAuth, Md5WrongPasswordAndUnknownUserFailAlike) {
  UserList u = users();
  ClientAuth a("md5", &u, "dave");
  ServerAuth c(password_creds("dave", "wrong"));
  ClientAuth::Step last;
  EXPECT_FALSE(play(a, c, &last));
  EXPECT_EQ(last.state, ClientAuth::State::failure);

  ClientAuth b("md5", &u, "nobody");
  auto first = b.begin();
  EXPECT_EQ(first.send->code, AuthCode::md5_password);  // same question as for a real user
  ServerAuth d(password_creds("nobody", "x"));
  EXPECT_FALSE(play(b, d));
}

TEST(ClientAuth, ScramSecretEntryThenLoginToServerWithTheProvenKey) {
  UserList u = users();
  // auth_type md5 still uses SCRAM for a user with a SCRAM secret, as PgBouncer does.
  for (const char* type : {"scram-sha-256", "md5"}) {
    ClientAuth front(type, &u, "alice");
    ServerAuth client(password_creds("alice", "pencil"));
    ASSERT_TRUE(play(front, client)) << type;
    ServerCredentials creds = front.credentials();
    ASSERT_TRUE(creds.scram_secret);
    EXPECT_EQ(creds.scram_client_key.size(), 32u);

    // The pooler now logs in to a "server" that stores the same secret.
    ClientAuth server("scram-sha-256", &u, "alice");
    ServerAuth pooler(creds);
    EXPECT_TRUE(play(server, pooler)) << type;
  }
}

TEST(ClientAuth, ScramFailures) {
  UserList u = users();
  ClientAuth a("scram-sha-256", &u, "alice");
  ServerAuth c(password_creds("alice", "pencils"));
  EXPECT_FALSE(play(a, c));
  EXPECT_TRUE(a.credentials().scram_client_key.empty());

  ClientAuth b("scram-sha-256", &u, "dave");  // md5 hash cannot do SCRAM
  ServerAuth d(password_creds("dave", "secret1"));
  ClientAuth::Step last;
  EXPECT_FALSE(play(b, d, &last));
  EXPECT_NE(last.reason.find("md5"), std::string::npos);

  ClientAuth e("scram-sha-256", &u, "ghost");
  ServerAuth f(password_creds("ghost", "x"));
  EXPECT_FALSE(play(e, f));

  ClientAuth g("scram-sha-256", &u, "alice");
  g.begin();
  auto bad = g.on_password_message(sasl_initial_response("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=x"));
  EXPECT_EQ(bad.state, ClientAuth::State::failure);
}

TEST(ClientAuth, PlainAuthType) {
  UserList u = users();
  for (auto [user, pw] : {std::pair{"plainuser", "pw"}, {"dave", "secret1"}, {"alice", "pencil"}}) {
    ClientAuth a("plain", &u, user);
    ServerAuth c(password_creds(user, pw));
    EXPECT_TRUE(play(a, c)) << user;
  }
  ClientAuth a("plain", &u, "plainuser");
  ServerAuth c(password_creds("plainuser", "nope"));
  EXPECT_FALSE(play(a, c));
}

TEST(ServerAuth, RefusesWhatItCannotAnswer) {
  ServerCredentials hash_only;
  hash_only.user = "dave";
  hash_only.md5_hash = "md58b4629c655965ca7d17c5d830b5d6fa2";
  ServerAuth a(hash_only);
  EXPECT_FALSE(a.on_request(AuthCode::cleartext_password, "").error.empty());
  ServerAuth b(hash_only);
  std::string mechs = std::string("SCRAM-SHA-256") + '\0' + '\0';
  EXPECT_FALSE(b.on_request(AuthCode::sasl, mechs).error.empty());
  ServerAuth c(password_creds("u", "p"));
  std::string plus_only = std::string("SCRAM-SHA-256-PLUS") + '\0' + '\0';
  EXPECT_FALSE(c.on_request(AuthCode::sasl, plus_only).error.empty());
  EXPECT_FALSE(c.on_request(static_cast<AuthCode>(7), "").error.empty());  // GSS
  // AuthenticationOk before the server proved itself in SCRAM.
  ServerAuth d(password_creds("u", "p"));
  ASSERT_TRUE(d.on_request(AuthCode::sasl, mechs).send);
  EXPECT_FALSE(d.on_request(AuthCode::ok, "").error.empty());
}

TEST(SaslInitialResponse, RoundTripAndMalformed) {
  auto p = parse_sasl_initial_response(sasl_initial_response("SCRAM-SHA-256", "n,,n=,r=abc"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->mechanism, "SCRAM-SHA-256");
  EXPECT_EQ(p->data, "n,,n=,r=abc");
  EXPECT_FALSE(parse_sasl_initial_response("SCRAM"));
  EXPECT_FALSE(parse_sasl_initial_response(std::string("M\0\0\0\0\x09x", 7)));
  auto none = parse_sasl_initial_response(std::string("M\0\xff\xff\xff\xff", 6));
  ASSERT_TRUE(none);
  EXPECT_EQ(none->data, "");
}

// Logs in to a real PostgreSQL over TCP with ServerAuth. Set PGCOHERE_TEST_PG=host:port
// for a server where:
//   SET password_encryption='scram-sha-256'; CREATE ROLE alice LOGIN PASSWORD 'pencil';
//   SET password_encryption='md5'; CREATE ROLE dave LOGIN PASSWORD 'secret1';
// and pg_hba.conf has `host all dave 127.0.0.1/32 md5` before
// `host all all 127.0.0.1/32 scram-sha-256`.
namespace {
std::string login(const std::string& host, const std::string& port, ServerCredentials creds) {
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::socket sock(io);
  asio::connect(sock, asio::ip::tcp::resolver(io).resolve(host, port));
  std::string startup;
  auto put32 = [](std::string& o, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) o += static_cast<char>(v >> s);
  };
  std::string params = "user" + std::string(1, '\0') + creds.user + '\0' + "database" + '\0' +
                       "postgres" + '\0' + '\0';
  put32(startup, static_cast<std::uint32_t>(8 + params.size()));
  put32(startup, 196608);
  startup += params;
  asio::write(sock, asio::buffer(startup));
  ServerAuth auth(creds);
  for (;;) {
    char head[5];
    asio::read(sock, asio::buffer(head, 5));
    std::uint32_t len = 0;
    for (int i = 1; i < 5; ++i) len = (len << 8) | static_cast<unsigned char>(head[i]);
    std::string body(len - 4, '\0');
    asio::read(sock, asio::buffer(body));
    if (head[0] == 'E') return "server error: " + body;
    if (head[0] != 'R') return "unexpected message " + std::string(1, head[0]);
    std::int32_t code = 0;
    for (int i = 0; i < 4; ++i) code = (code << 8) | static_cast<unsigned char>(body[i]);
    auto step = auth.on_request(code, std::string_view(body).substr(4));
    if (!step.error.empty()) return step.error;
    if (step.done) return "";
    if (step.send) {
      std::string msg = "p";
      put32(msg, static_cast<std::uint32_t>(4 + step.send->size()));
      msg += *step.send;
      asio::write(sock, asio::buffer(msg));
    }
  }
}
}  // namespace

TEST(ServerAuthLive, LogsInToPostgres) {
  const char* target = std::getenv("PGCOHERE_TEST_PG");
  if (!target) GTEST_SKIP() << "PGCOHERE_TEST_PG=host:port not set";
  std::string t(target);
  std::string host = t.substr(0, t.rfind(':')), port = t.substr(t.rfind(':') + 1);
  EXPECT_EQ(login(host, port, password_creds("alice", "pencil")), "");
  EXPECT_NE(login(host, port, password_creds("alice", "wrong")), "");
  EXPECT_EQ(login(host, port, password_creds("dave", "secret1")), "");
  ServerCredentials hash;
  hash.user = "dave";
  hash.md5_hash = "md58b4629c655965ca7d17c5d830b5d6fa2";
  EXPECT_EQ(login(host, port, hash), "");

  // The PgBouncer path: a client proves alice's key to the pooler, which reuses it.
  UserList u = users();
  ClientAuth front("scram-sha-256", &u, "alice");
  ServerAuth client(password_creds("alice", "pencil"));
  ASSERT_TRUE(play(front, client));
  EXPECT_EQ(login(host, port, front.credentials()), "");
}

TEST(ClientAuth, PlainPasswordsDeriveTheirScramSecretOnce) {
  UserList u = users();
  std::string first_salt;
  for (int i = 0; i < 3; ++i) {
    ClientAuth a("scram-sha-256", &u, "plainuser");
    auto s = a.begin();
    ASSERT_TRUE(s.send);
    ClientAuth::Step continue_step =
        a.on_password_message(sasl_initial_response("SCRAM-SHA-256", "n,,n=,r=clientnonce"));
    ASSERT_TRUE(continue_step.send) << continue_step.reason;
    std::string msg = continue_step.send->data;
    std::string salt = msg.substr(msg.find(",s="), msg.find(",i=") - msg.find(",s="));
    if (i == 0) first_salt = salt;
    EXPECT_EQ(salt, first_salt);
  }
  // A changed password gets a new secret.
  UserList changed = parse_userlist("\"plainuser\" \"pw2\"\n");
  ClientAuth b("scram-sha-256", &changed, "plainuser");
  b.begin();
  auto st = b.on_password_message(sasl_initial_response("SCRAM-SHA-256", "n,,n=,r=clientnonce"));
  ASSERT_TRUE(st.send);
  EXPECT_EQ(st.send->data.find(first_salt), std::string::npos);
  ServerAuth client(password_creds("plainuser", "pw2"));
  ClientAuth c("scram-sha-256", &changed, "plainuser");
  EXPECT_TRUE(play(c, client));
}

TEST(ClientAuth, FailureMessageIsPostgresWording) {
  EXPECT_EQ(auth_failed_message("alice"), "password authentication failed for user \"alice\"");
  EXPECT_EQ(kAuthFailedSqlstate, "28P01");
}
