// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it, without channel binding:
// secrets, the four messages (pure parsers), the server side that checks a client and the
// client side that logs in to PostgreSQL. No I/O: callers move the SASL payloads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "auth/userlist.h"

namespace pgcohere::auth {

inline constexpr std::string_view kScramMechanism = "SCRAM-SHA-256";
inline constexpr int kScramDefaultIterations = 4096;  // PostgreSQL's scram_iterations default

// Raw (not base64) bytes.
struct ScramSecret {
  int iterations = 0;
  std::string salt;
  std::string stored_key;  // H(ClientKey), 32 bytes
  std::string server_key;  // 32 bytes
};

// `SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>` (pg_authid format).
std::optional<ScramSecret> parse_scram_secret(std::string_view text);
std::string format_scram_secret(const ScramSecret& secret);
ScramSecret scram_secret_from_password(std::string_view password, std::string_view salt,
                                       int iterations = kScramDefaultIterations);
// The secret to check a client against: parsed for SCRAM entries, derived (random salt) for
// plain passwords; nullopt for md5 hashes, which cannot do SCRAM.
std::optional<ScramSecret> scram_secret_for(const UserEntry& entry);

// SASLprep (RFC 4013) as PostgreSQL applies it: the prepared password, or the input
// unchanged when it is not valid UTF-8 or contains prohibited characters. ASCII is exact;
// non-ASCII input gets the mapping steps (B.1, C.1.2) but not NFKC normalization.
std::string saslprep(std::string_view password);

// ---- Messages
template <typename T>
struct Parsed {
  std::optional<T> value;
  std::string error;
  explicit operator bool() const { return value.has_value(); }
  const T* operator->() const { return &*value; }
  const T& operator*() const { return *value; }
};

struct ClientFirst {
  std::string gs2_header;  // "n,," or "y,,", repeated base64-encoded in the final message
  std::string bare;        // "n=...,r=..." as sent, part of the AuthMessage
  std::string username;    // PostgreSQL ignores it (the startup packet names the user)
  std::string nonce;
};
struct ServerFirst {
  std::string raw;
  std::string nonce;  // client nonce + server nonce
  std::string salt;   // raw bytes
  int iterations = 0;
};
struct ClientFinal {
  std::string channel_binding;  // decoded c= value (must equal the gs2 header)
  std::string nonce;
  std::string proof;          // raw bytes
  std::string without_proof;  // part of the AuthMessage
};
struct ServerFinal {
  std::string verifier;  // raw ServerSignature, or empty with `error` set (e=...)
  std::string error;
};

Parsed<ClientFirst> parse_client_first(std::string_view msg);
Parsed<ServerFirst> parse_server_first(std::string_view msg);
Parsed<ClientFinal> parse_client_final(std::string_view msg);
Parsed<ServerFinal> parse_server_final(std::string_view msg);

// One exchange step: the message to send next, or why the exchange failed. Errors are
// for the log (they never contain secrets); a client just gets "password authentication
// failed".
struct ScramStep {
  std::string message;
  std::string error;
  bool ok() const { return error.empty(); }
};

// Checks one client. Use: client_first(SASLInitialResponse data) -> send
// AuthenticationSASLContinue(message); client_final(SASLResponse data) -> on ok(), send
// AuthenticationSASLFinal(message) then AuthenticationOk.
class ScramServer {
 public:
  // `server_nonce`: empty for a random one (tests pass a fixed one).
  explicit ScramServer(ScramSecret secret, std::string server_nonce = {});
  // For a user that does not exist (or cannot do SCRAM): runs the same exchange with a
  // made-up salt derived from the user name, so that probing cannot tell, then fails.
  static ScramServer for_unknown_user(std::string_view username);

  ScramStep client_first(std::string_view msg);
  ScramStep client_final(std::string_view msg);
  bool authenticated() const { return authenticated_; }
  // After success: the client's raw ClientKey (recovered from its proof). With the secret's
  // ServerKey it lets the pooler log in to PostgreSQL as this user, as PgBouncer does,
  // when the server stores the same secret (same salt and iterations).
  const std::string& client_key() const { return client_key_; }
  const ScramSecret& secret() const { return secret_; }

 private:
  enum class State { want_client_first, want_client_final, done };
  ScramSecret secret_;
  std::string server_nonce_;
  bool doomed_ = false;
  State state_ = State::want_client_first;
  ClientFirst first_;
  std::string server_first_;
  bool authenticated_ = false;
  std::string client_key_;
};

// Logs in to PostgreSQL. Use: send SASLInitialResponse(kScramMechanism, client_first());
// on AuthenticationSASLContinue, server_first(data) -> SASLResponse(message); on
// AuthenticationSASLFinal, server_final(data) must be ok() (it proves the server knows the
// secret) before AuthenticationOk is trusted.
class ScramClient {
 public:
  static ScramClient with_password(std::string_view password, std::string client_nonce = {});
  // With a stored secret plus the ClientKey recovered by ScramServer: works only when the
  // server's salt and iteration count are the secret's.
  static ScramClient with_keys(ScramSecret secret, std::string client_key,
                               std::string client_nonce = {});

  // `username` only for non-PostgreSQL peers (RFC test vectors); PostgreSQL ignores it.
  std::string client_first(std::string_view username = {});
  ScramStep server_first(std::string_view msg);
  ScramStep server_final(std::string_view msg);
  bool done() const { return state_ == State::done; }

 private:
  enum class State { start, want_server_first, want_server_final, done, failed };
  ScramClient() = default;
  std::string password_;  // prepared; empty when keys are given
  std::optional<ScramSecret> secret_;
  std::string client_key_;
  std::string client_nonce_;
  std::string client_first_bare_;
  std::string expected_server_signature_;
  State state_ = State::start;
};

}  // namespace pgcohere::auth
