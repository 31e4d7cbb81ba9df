// Client-facing and server-facing password exchanges.
#include "auth/exchange.h"

#include <mutex>
#include <unordered_map>

#include "auth/crypto.h"
#include "auth/md5.h"

namespace pgcohere::auth {

namespace {

void put_int32(std::string& out, std::int32_t v) {
  auto u = static_cast<std::uint32_t>(v);
  out += static_cast<char>(u >> 24);
  out += static_cast<char>(u >> 16);
  out += static_cast<char>(u >> 8);
  out += static_cast<char>(u);
}

std::int32_t get_int32(std::string_view s) {
  auto b = [&](int i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[i])); };
  return static_cast<std::int32_t>((b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3));
}

// "text\0" -> "text"; nullopt without exactly one trailing NUL.
std::optional<std::string_view> c_string(std::string_view body) {
  if (body.empty() || body.back() != '\0') return std::nullopt;
  body.remove_suffix(1);
  if (body.find('\0') != std::string_view::npos) return std::nullopt;
  return body;
}

// Deriving a SCRAM secret from a plain auth_file password costs 4096 HMAC rounds; do it
// once per (user, password) rather than on every login (PgBouncer caches it too).
ScramSecret cached_secret_for_plain(const UserEntry& entry) {
  static std::mutex mutex;
  static std::unordered_map<std::string, ScramSecret> cache;
  constexpr std::size_t kMaxEntries = 10000;
  std::string key = entry.name + '\0' + sha256(entry.secret);
  {
    std::lock_guard lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  ScramSecret secret = *scram_secret_for(entry);
  std::lock_guard lock(mutex);
  if (cache.size() >= kMaxEntries) cache.clear();
  cache.emplace(std::move(key), secret);
  return secret;
}

std::string sasl_mechanisms() {
  std::string out(kScramMechanism);
  out += '\0';
  out += '\0';
  return out;
}

}  // namespace

std::string auth_failed_message(std::string_view user) {
  return "password authentication failed for user \"" + std::string(user) + "\"";
}

std::string sasl_initial_response(std::string_view mechanism, std::string_view data) {
  std::string out(mechanism);
  out += '\0';
  put_int32(out, static_cast<std::int32_t>(data.size()));
  out += data;
  return out;
}

std::optional<SaslInitial> parse_sasl_initial_response(std::string_view body) {
  std::size_t nul = body.find('\0');
  if (nul == std::string_view::npos || body.size() < nul + 5) return std::nullopt;
  SaslInitial out;
  out.mechanism = std::string(body.substr(0, nul));
  std::int32_t len = get_int32(body.substr(nul + 1, 4));
  std::string_view rest = body.substr(nul + 5);
  if (len == -1) {
    if (!rest.empty()) return std::nullopt;
  } else if (len < 0 || static_cast<std::size_t>(len) != rest.size()) {
    return std::nullopt;
  }
  out.data = std::string(rest);
  return out;
}

// ---- ClientAuth

ClientAuth::ClientAuth(std::string_view auth_type, const UserList* users, std::string user)
    : user_(std::move(user)) {
  if (auth_type == "trust" || auth_type == "any") method_ = Method::trust;
  else if (auth_type == "plain") method_ = Method::plain;
  else if (auth_type == "scram-sha-256") method_ = Method::scram;
  else method_ = Method::md5;
  if (users)
    if (const UserEntry* e = users->find(user_)) entry_ = *e;
  // A SCRAM secret can log in to PostgreSQL only with the ClientKey a SCRAM exchange
  // recovers, so md5 and plain clients of such users get SCRAM (PgBouncer does it for md5;
  // for plain, pgbouncer#1186: the server login would fail for want of keys).
  if ((method_ == Method::md5 || method_ == Method::plain) && entry_ && entry_->kind == SecretKind::scram)
    method_ = Method::scram;
}

ClientAuth::Step ClientAuth::fail(std::string reason) {
  state_ = State::failure;
  Step s;
  s.state = state_;
  s.reason = std::move(reason);
  return s;
}

ClientAuth::Step ClientAuth::succeed() {
  state_ = State::success;
  Step s;
  s.state = state_;
  s.send = AuthRequest{AuthCode::ok, {}};
  return s;
}

ClientAuth::Step ClientAuth::begin() {
  if (state_ != State::start) return fail("authentication already started");
  Step s;
  switch (method_) {
    case Method::trust: return succeed();
    case Method::plain:
      s.send = AuthRequest{AuthCode::cleartext_password, {}};
      break;
    case Method::md5:
      // Unknown users get a salt too, so that the answer cannot tell them apart.
      salt_ = random_bytes(4);
      s.send = AuthRequest{AuthCode::md5_password, salt_};
      break;
    case Method::scram: {
      std::optional<ScramSecret> secret;
      if (entry_ && entry_->kind == SecretKind::plain) secret = cached_secret_for_plain(*entry_);
      else if (entry_) secret = scram_secret_for(*entry_);
      scram_.emplace(secret ? ScramServer(*secret) : ScramServer::for_unknown_user(user_));
      s.send = AuthRequest{AuthCode::sasl, sasl_mechanisms()};
      break;
    }
  }
  state_ = State::waiting;
  s.state = state_;
  return s;
}

ClientAuth::Step ClientAuth::on_password_message(std::string_view body) {
  if (state_ != State::waiting) return fail("unexpected password message");
  switch (method_) {
    case Method::trust: return fail("unexpected password message");
    case Method::plain: {
      auto pw = c_string(body);
      if (!pw) return fail("malformed password message");
      if (!entry_) return fail("no such user in auth_file");
      bool ok = false;
      if (entry_->kind == SecretKind::plain) ok = constant_time_equal(*pw, entry_->secret);
      else if (entry_->kind == SecretKind::md5)
        ok = constant_time_equal(md5_password_hash(user_, *pw), *md5_stored_hash(*entry_));
      else if (auto secret = parse_scram_secret(entry_->secret))
        ok = constant_time_equal(
            scram_secret_from_password(*pw, secret->salt, secret->iterations).stored_key,
            secret->stored_key);
      return ok ? succeed() : fail("password does not match");
    }
    case Method::md5: {
      auto response = c_string(body);
      if (!response) return fail("malformed password message");
      if (!entry_) return fail("no such user in auth_file");
      return md5_verify(*entry_, salt_, *response) ? succeed() : fail("password does not match");
    }
    case Method::scram: {
      if (!scram_started_) {
        auto initial = parse_sasl_initial_response(body);
        if (!initial) return fail("malformed SASLInitialResponse");
        if (initial->mechanism != kScramMechanism)
          return fail("client selected an unsupported SASL mechanism: " + initial->mechanism);
        scram_started_ = true;
        ScramStep st = scram_->client_first(initial->data);
        if (!st.ok()) return fail(st.error);
        Step s;
        s.state = state_;
        s.send = AuthRequest{AuthCode::sasl_continue, std::move(st.message)};
        return s;
      }
      ScramStep st = scram_->client_final(body);
      if (!st.ok()) {
        if (!entry_) return fail("no such user in auth_file");
        if (entry_->kind == SecretKind::md5) return fail("the auth_file has an md5 hash, SCRAM needs a password or SCRAM secret");
        return fail(st.error);
      }
      state_ = State::success;
      Step s;
      s.state = state_;
      // AuthenticationSASLFinal; the caller sends AuthenticationOk right after it.
      s.send = AuthRequest{AuthCode::sasl_final, std::move(st.message)};
      return s;
    }
  }
  return fail("unreachable");
}

ServerCredentials ClientAuth::credentials() const {
  ServerCredentials c;
  c.user = user_;
  if (!entry_) return c;
  switch (entry_->kind) {
    case SecretKind::plain: c.password = entry_->secret; break;
    case SecretKind::md5: c.md5_hash = md5_stored_hash(*entry_); break;
    case SecretKind::scram:
      if (state_ == State::success && scram_ && scram_->authenticated()) {
        c.scram_secret = scram_->secret();
        c.scram_client_key = scram_->client_key();
      }
      break;
  }
  return c;
}

// ---- ServerAuth

ServerAuth::ServerAuth(ServerCredentials credentials, std::string client_nonce)
    : creds_(std::move(credentials)), client_nonce_(std::move(client_nonce)) {}

ServerAuth::Step ServerAuth::on_request(AuthCode code, std::string_view data) {
  Step s;
  switch (code) {
    case AuthCode::ok:
      if (scram_ && !scram_verified_) {
        s.error = "server accepted SCRAM login without proving it knows the secret";
        return s;
      }
      s.done = true;
      return s;
    case AuthCode::cleartext_password:
      if (!creds_.password) {
        s.error = "server asks for a cleartext password; the auth_file has only a hash for " + creds_.user;
        return s;
      }
      s.send = *creds_.password + '\0';
      return s;
    case AuthCode::md5_password: {
      if (data.size() != 4) {
        s.error = "malformed AuthenticationMD5Password";
        return s;
      }
      std::string hash;
      if (creds_.password) hash = md5_password_hash(creds_.user, *creds_.password);
      else if (creds_.md5_hash) hash = *creds_.md5_hash;
      else {
        s.error = "server asks for md5; the auth_file has a SCRAM secret for " + creds_.user;
        return s;
      }
      s.send = md5_response(hash, data) + '\0';
      return s;
    }
    case AuthCode::sasl: {
      // A list of NUL-terminated mechanism names, ended by an empty one.
      bool offered = false;
      std::size_t pos = 0;
      while (pos < data.size()) {
        std::size_t nul = data.find('\0', pos);
        if (nul == std::string_view::npos || nul == pos) break;
        if (data.substr(pos, nul - pos) == kScramMechanism) offered = true;
        pos = nul + 1;
      }
      if (!offered) {
        s.error = "server offers no SASL mechanism we support (SCRAM-SHA-256 without channel binding)";
        return s;
      }
      if (creds_.password) {
        scram_ = ScramClient::with_password(*creds_.password, client_nonce_);
      } else if (creds_.scram_secret && !creds_.scram_client_key.empty()) {
        scram_ = ScramClient::with_keys(*creds_.scram_secret, creds_.scram_client_key, client_nonce_);
      } else {
        s.error = creds_.md5_hash
                      ? "server asks for SCRAM; the auth_file has only an md5 hash for " + creds_.user
                      : "server asks for SCRAM; no password or SCRAM key for " + creds_.user +
                            " (SCRAM secrets work only after the client logged in with SCRAM)";
        return s;
      }
      s.send = sasl_initial_response(kScramMechanism, scram_->client_first());
      return s;
    }
    case AuthCode::sasl_continue: {
      if (!scram_) {
        s.error = "unexpected AuthenticationSASLContinue";
        return s;
      }
      ScramStep st = scram_->server_first(data);
      if (!st.ok()) {
        s.error = st.error;
        return s;
      }
      s.send = std::move(st.message);
      return s;
    }
    case AuthCode::sasl_final: {
      if (!scram_) {
        s.error = "unexpected AuthenticationSASLFinal";
        return s;
      }
      ScramStep st = scram_->server_final(data);
      if (!st.ok()) {
        s.error = st.error;
        return s;
      }
      scram_verified_ = true;
      return s;
    }
  }
  s.error = "server asks for authentication method " + std::to_string(static_cast<int>(code)) +
            ", which is not supported";
  return s;
}

}  // namespace pgcohere::auth
