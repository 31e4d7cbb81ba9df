// The two password exchanges of the pooler as pure state machines over message bodies:
// ClientAuth checks a connecting client against the auth_file (what the pooler sends as
// Authentication* and what it makes of the client's 'p' messages); ServerAuth answers
// PostgreSQL's Authentication* requests with the user's stored credentials. The caller
// frames the bodies ('R' / 'p' + length) and moves them over sockets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "auth/scram.h"
#include "auth/userlist.h"

namespace pgcohere::auth {

// Authentication request codes ('R' message, first int32).
enum class AuthCode : std::int32_t {
  ok = 0,
  cleartext_password = 3,
  md5_password = 5,
  sasl = 10,
  sasl_continue = 11,
  sasl_final = 12,
};

// One 'R' message: the code and the bytes after it (md5: the 4-byte salt; sasl: the
// mechanism list "SCRAM-SHA-256\0\0"; sasl_continue / sasl_final: the SCRAM message).
struct AuthRequest {
  AuthCode code = AuthCode::ok;
  std::string data;
};

// What the pooler may use to log in to PostgreSQL as a user, best first.
struct ServerCredentials {
  std::string user;
  std::optional<std::string> password;  // plain text: any method
  std::optional<std::string> md5_hash;  // "md5...": md5 only
  // SCRAM secret plus the ClientKey a client proved: SCRAM only, and only if the server
  // stores the same secret.
  std::optional<ScramSecret> scram_secret;
  std::string scram_client_key;
  bool empty() const { return !password && !md5_hash && scram_client_key.empty(); }
};

class ClientAuth {
 public:
  enum class State { start, waiting, success, failure };
  struct Step {
    std::optional<AuthRequest> send;  // an 'R' to send, if any (AuthenticationOk on success)
    State state = State::waiting;
    // On failure: for the log. The client gets only FATAL 28P01 "password authentication
    // failed for user ..." so that it cannot probe which users exist.
    std::string reason;
  };

  // auth_type as in the config: trust, any, plain, md5, scram-sha-256. `users` may be
  // null for trust/any. With md5 or plain, users whose secret is a SCRAM secret get SCRAM
  // (the server login needs the key it proves); with scram-sha-256, md5 hashes cannot log in.
  ClientAuth(std::string_view auth_type, const UserList* users, std::string user);

  // The first 'R' to send after the startup packet (AuthenticationOk for trust/any).
  Step begin();
  // The body of the client's 'p' message (PasswordMessage, SASLInitialResponse or
  // SASLResponse, depending on what was asked).
  Step on_password_message(std::string_view body);

  State state() const { return state_; }
  // After success: what the pooler can log in to PostgreSQL with, from the auth_file
  // entry and, for SCRAM secrets, the client's proven key.
  ServerCredentials credentials() const;

 private:
  enum class Method { trust, plain, md5, scram };
  Step fail(std::string reason);
  Step succeed();

  Method method_ = Method::md5;
  std::string user_;
  std::optional<UserEntry> entry_;
  State state_ = State::start;
  std::string salt_;                   // md5
  std::optional<ScramServer> scram_;   // SCRAM
  bool scram_started_ = false;
};

class ServerAuth {
 public:
  struct Step {
    std::optional<std::string> send;  // the body of a 'p' message to send
    bool done = false;                // AuthenticationOk seen
    std::string error;                // give up: log it and close the server connection
  };
  explicit ServerAuth(ServerCredentials credentials, std::string client_nonce = {});
  // One Authentication ('R') message from the server.
  Step on_request(AuthCode code, std::string_view data);
  Step on_request(std::int32_t code, std::string_view data) {
    return on_request(static_cast<AuthCode>(code), data);
  }

 private:
  ServerCredentials creds_;
  std::string client_nonce_;
  std::optional<ScramClient> scram_;
  bool scram_verified_ = false;
};

// What PostgreSQL tells a client whose password check failed, for every method and
// whatever the reason (unknown user included): FATAL, SQLSTATE 28P01, this message.
inline constexpr std::string_view kAuthFailedSqlstate = "28P01";
std::string auth_failed_message(std::string_view user);

// SASLInitialResponse body: mechanism, NUL, int32 length, data.
std::string sasl_initial_response(std::string_view mechanism, std::string_view data);
struct SaslInitial {
  std::string mechanism;
  std::string data;
};
std::optional<SaslInitial> parse_sasl_initial_response(std::string_view body);

}  // namespace pgcohere::auth
