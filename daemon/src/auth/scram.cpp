// SCRAM-SHA-256: secrets, message parsing, and the server and client state machines.
#include "auth/scram.h"

#include <charconv>
#include <cstdint>
#include <vector>

#include "auth/crypto.h"

namespace pgcohere::auth {

namespace {

constexpr std::size_t kNonceBytes = 18;  // as PostgreSQL: 24 base64 characters
constexpr int kMaxIterations = 100'000'000;

std::optional<int> parse_int(std::string_view s) {
  int v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

std::string random_nonce() { return base64_encode(random_bytes(kNonceBytes)); }

// printable = %x21-2B / %x2D-7E (no comma)
bool valid_nonce(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n)
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  return true;
}

// Splits "a=..,b=..,.." into attributes; a value may contain '=' but not ','.
struct Attr {
  char name;
  std::string_view value;
};
std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = s.find(',', start);
    if (comma == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
}
std::optional<Attr> attr(std::string_view part) {
  if (part.size() < 2 || part[1] != '=') return std::nullopt;
  char n = part[0];
  if (!((n >= 'a' && n <= 'z') || (n >= 'A' && n <= 'Z'))) return std::nullopt;
  return Attr{n, part.substr(2)};
}

// saslname: "=2C" is ',' and "=3D" is '='; any other '=' is invalid.
std::optional<std::string> decode_saslname(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '=') {
      if (s.substr(i, 3) == "=2C") out += ',';
      else if (s.substr(i, 3) == "=3D") out += '=';
      else return std::nullopt;
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

template <typename T>
Parsed<T> bad(std::string e) {
  Parsed<T> p;
  p.error = std::move(e);
  return p;
}

struct Keys {
  std::string client_key, stored_key, server_key;
};
Keys keys_from_salted(std::string_view salted) {
  Keys k;
  k.client_key = hmac_sha256(salted, "Client Key");
  k.stored_key = sha256(k.client_key);
  k.server_key = hmac_sha256(salted, "Server Key");
  return k;
}

// ---- SASLprep helpers (UTF-8)
bool decode_utf8(std::string_view s, std::vector<char32_t>& out) {
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    out.push_back(cp);
    i += len;
  }
  return true;
}
void encode_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}
bool non_ascii_space(char32_t c) {  // RFC 3454 C.1.2
  return c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200b) || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}
bool mapped_to_nothing(char32_t c) {  // RFC 3454 B.1
  return c == 0xad || c == 0x34f || c == 0x1806 || (c >= 0x180b && c <= 0x180d) ||
         (c >= 0x200b && c <= 0x200d) || c == 0x2060 || (c >= 0xfe00 && c <= 0xfe0f) ||
         c == 0xfeff;
}
bool prohibited(char32_t c) {  // RFC 3454 C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8 (main ranges)
  return c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == 0x6dd || c == 0x70f ||
         c == 0x180e || c == 0x200c || c == 0x200d || c == 0x2028 || c == 0x2029 ||
         (c >= 0x2060 && c <= 0x2063) || (c >= 0x206a && c <= 0x206f) || c == 0xfeff ||
         (c >= 0xfff9 && c <= 0xfffd) || (c >= 0x1d173 && c <= 0x1d17a) ||
         (c >= 0xe000 && c <= 0xf8ff) || (c >= 0xf0000 && c <= 0xffffd) ||
         (c >= 0x100000 && c <= 0x10fffd) || (c & 0xfffe) == 0xfffe ||
         (c >= 0xfdd0 && c <= 0xfdef) || (c >= 0x2ff0 && c <= 0x2ffb) || c == 0x340 ||
         c == 0x341 || c == 0x200e || c == 0x200f || (c >= 0x202a && c <= 0x202e) ||
         c == 0xe0001 || (c >= 0xe0020 && c <= 0xe007f);
}

}  // namespace

std::string saslprep(std::string_view password) {
  bool ascii = true;
  for (char c : password)
    if (static_cast<unsigned char>(c) >= 0x80) ascii = false;
  if (ascii) {
    // Printable ASCII maps to itself; any control character is prohibited, and then
    // PostgreSQL uses the password as it is. Either way: unchanged.
    return std::string(password);
  }
  std::vector<char32_t> cps;
  if (!decode_utf8(password, cps)) return std::string(password);
  std::string out;
  for (char32_t c : cps) {
    if (mapped_to_nothing(c)) continue;
    if (non_ascii_space(c)) c = ' ';
    if (prohibited(c)) return std::string(password);
    encode_utf8(c, out);
  }
  if (out.empty()) return std::string(password);
  return out;
}

// ---- Secrets

std::optional<ScramSecret> parse_scram_secret(std::string_view text) {
  constexpr std::string_view head = "SCRAM-SHA-256$";
  if (text.substr(0, head.size()) != head) return std::nullopt;
  text.remove_prefix(head.size());
  std::size_t dollar = text.find('$');
  if (dollar == std::string_view::npos) return std::nullopt;
  std::string_view iter_salt = text.substr(0, dollar), keys = text.substr(dollar + 1);
  std::size_t c1 = iter_salt.find(':'), c2 = keys.find(':');
  if (c1 == std::string_view::npos || c2 == std::string_view::npos) return std::nullopt;
  auto iterations = parse_int(iter_salt.substr(0, c1));
  auto salt = base64_decode(iter_salt.substr(c1 + 1));
  auto stored = base64_decode(keys.substr(0, c2));
  auto server = base64_decode(keys.substr(c2 + 1));
  if (!iterations || *iterations > kMaxIterations || !salt || salt->empty() || !stored ||
      stored->size() != 32 || !server || server->size() != 32)
    return std::nullopt;
  return ScramSecret{*iterations, std::move(*salt), std::move(*stored), std::move(*server)};
}

std::string format_scram_secret(const ScramSecret& s) {
  return "SCRAM-SHA-256$" + std::to_string(s.iterations) + ":" + base64_encode(s.salt) + "$" +
         base64_encode(s.stored_key) + ":" + base64_encode(s.server_key);
}

ScramSecret scram_secret_from_password(std::string_view password, std::string_view salt,
                                       int iterations) {
  Keys k = keys_from_salted(pbkdf2_sha256(saslprep(password), salt, iterations));
  return ScramSecret{iterations, std::string(salt), std::move(k.stored_key),
                     std::move(k.server_key)};
}

std::optional<ScramSecret> scram_secret_for(const UserEntry& entry) {
  switch (entry.kind) {
    case SecretKind::scram: return parse_scram_secret(entry.secret);
    case SecretKind::plain:
      return scram_secret_from_password(entry.secret, random_bytes(16), kScramDefaultIterations);
    case SecretKind::md5: return std::nullopt;
  }
  return std::nullopt;
}

// ---- Message parsers

Parsed<ClientFirst> parse_client_first(std::string_view msg) {
  ClientFirst out;
  // gs2-header = gs2-cbind-flag "," [ authzid ] ","
  std::size_t c1 = msg.find(',');
  if (c1 == std::string_view::npos) return bad<ClientFirst>("malformed SCRAM message (no GS2 header)");
  std::string_view flag = msg.substr(0, c1);
  if (flag.substr(0, 2) == "p=")
    return bad<ClientFirst>("client requires channel binding, which is not offered");
  if (flag != "n" && flag != "y") return bad<ClientFirst>("malformed SCRAM message (GS2 flag)");
  std::size_t c2 = msg.find(',', c1 + 1);
  if (c2 == std::string_view::npos) return bad<ClientFirst>("malformed SCRAM message (GS2 header)");
  if (c2 != c1 + 1) return bad<ClientFirst>("client uses an authorization identity, which is not supported");
  out.gs2_header = std::string(msg.substr(0, c2 + 1));
  std::string_view bare = msg.substr(c2 + 1);
  out.bare = std::string(bare);
  auto parts = split_commas(bare);
  if (parts.size() < 2) return bad<ClientFirst>("malformed SCRAM message (client-first)");
  auto user = attr(parts[0]);
  if (!user || user->name != 'n') {
    if (user && user->name == 'm') return bad<ClientFirst>("unsupported SCRAM extension");
    return bad<ClientFirst>("malformed SCRAM message (expected n=)");
  }
  auto name = decode_saslname(user->value);
  if (!name) return bad<ClientFirst>("malformed SCRAM message (user name encoding)");
  out.username = std::move(*name);
  auto nonce = attr(parts[1]);
  if (!nonce || nonce->name != 'r' || !valid_nonce(nonce->value))
    return bad<ClientFirst>("malformed SCRAM message (client nonce)");
  out.nonce = std::string(nonce->value);
  for (std::size_t i = 2; i < parts.size(); ++i)
    if (!attr(parts[i])) return bad<ClientFirst>("malformed SCRAM message (extension)");
  return {std::move(out), {}};
}

Parsed<ServerFirst> parse_server_first(std::string_view msg) {
  ServerFirst out;
  out.raw = std::string(msg);
  auto parts = split_commas(msg);
  auto a0 = attr(parts[0]);
  if (a0 && a0->name == 'e') return bad<ServerFirst>("server error: " + std::string(a0->value));
  if (parts.size() < 3) return bad<ServerFirst>("malformed server-first-message");
  auto r = attr(parts[0]), s = attr(parts[1]), i = attr(parts[2]);
  if (!r || r->name != 'r' || !valid_nonce(r->value))
    return bad<ServerFirst>("malformed server-first-message (nonce)");
  if (!s || s->name != 's') return bad<ServerFirst>("malformed server-first-message (salt)");
  auto salt = base64_decode(s->value);
  if (!salt || salt->empty()) return bad<ServerFirst>("malformed server-first-message (salt)");
  if (!i || i->name != 'i') return bad<ServerFirst>("malformed server-first-message (iterations)");
  auto iters = parse_int(i->value);
  if (!iters || *iters > kMaxIterations)
    return bad<ServerFirst>("malformed server-first-message (iterations)");
  out.nonce = std::string(r->value);
  out.salt = std::move(*salt);
  out.iterations = *iters;
  return {std::move(out), {}};
}

Parsed<ClientFinal> parse_client_final(std::string_view msg) {
  ClientFinal out;
  std::size_t p = msg.rfind(",p=");
  if (p == std::string_view::npos) return bad<ClientFinal>("malformed client-final-message (no proof)");
  out.without_proof = std::string(msg.substr(0, p));
  auto proof = base64_decode(msg.substr(p + 3));
  if (!proof || proof->size() != 32) return bad<ClientFinal>("malformed client-final-message (proof)");
  out.proof = std::move(*proof);
  auto parts = split_commas(out.without_proof);
  if (parts.size() < 2) return bad<ClientFinal>("malformed client-final-message");
  auto c = attr(parts[0]), r = attr(parts[1]);
  if (!c || c->name != 'c') return bad<ClientFinal>("malformed client-final-message (channel binding)");
  auto cb = base64_decode(c->value);
  if (!cb) return bad<ClientFinal>("malformed client-final-message (channel binding)");
  out.channel_binding = std::move(*cb);
  if (!r || r->name != 'r' || !valid_nonce(r->value))
    return bad<ClientFinal>("malformed client-final-message (nonce)");
  out.nonce = std::string(r->value);
  for (std::size_t i = 2; i < parts.size(); ++i)
    if (!attr(parts[i])) return bad<ClientFinal>("malformed client-final-message (extension)");
  return {std::move(out), {}};
}

Parsed<ServerFinal> parse_server_final(std::string_view msg) {
  ServerFinal out;
  auto parts = split_commas(msg);
  auto a = attr(parts[0]);
  if (a && a->name == 'e') {
    out.error = a->value.empty() ? "unspecified" : std::string(a->value);
    return {std::move(out), {}};
  }
  if (!a || a->name != 'v') return bad<ServerFinal>("malformed server-final-message");
  auto v = base64_decode(a->value);
  if (!v || v->size() != 32) return bad<ServerFinal>("malformed server-final-message (verifier)");
  out.verifier = std::move(*v);
  return {std::move(out), {}};
}

// ---- Server

ScramServer::ScramServer(ScramSecret secret, std::string server_nonce)
    : secret_(std::move(secret)),
      server_nonce_(server_nonce.empty() ? random_nonce() : std::move(server_nonce)) {}

ScramServer ScramServer::for_unknown_user(std::string_view username) {
  // A salt that is stable per user name (so repeated probes see the same one) but
  // unpredictable without the per-process key.
  static const std::string mock_key = random_bytes(32);
  ScramSecret fake;
  fake.iterations = kScramDefaultIterations;
  fake.salt = sha256(mock_key + std::string(username)).substr(0, 16);
  fake.stored_key = random_bytes(32);
  fake.server_key = random_bytes(32);
  ScramServer server(std::move(fake));
  server.doomed_ = true;
  return server;
}

ScramStep ScramServer::client_first(std::string_view msg) {
  if (state_ != State::want_client_first) return {{}, "unexpected SCRAM client-first-message"};
  state_ = State::done;
  auto first = parse_client_first(msg);
  if (!first) return {{}, first.error};
  first_ = *first.value;
  server_first_ = "r=" + first_.nonce + server_nonce_ + ",s=" + base64_encode(secret_.salt) +
                  ",i=" + std::to_string(secret_.iterations);
  state_ = State::want_client_final;
  return {server_first_, {}};
}

ScramStep ScramServer::client_final(std::string_view msg) {
  if (state_ != State::want_client_final) return {{}, "unexpected SCRAM client-final-message"};
  state_ = State::done;
  auto fin = parse_client_final(msg);
  if (!fin) return {{}, fin.error};
  if (fin->channel_binding != first_.gs2_header)
    return {{}, "SCRAM channel binding check failed"};
  if (fin->nonce != first_.nonce + server_nonce_) return {{}, "SCRAM nonce mismatch"};
  std::string auth_message = first_.bare + "," + server_first_ + "," + fin->without_proof;
  std::string client_signature = hmac_sha256(secret_.stored_key, auth_message);
  std::string client_key = xor_bytes(fin->proof, client_signature);
  if (doomed_ || !constant_time_equal(sha256(client_key), secret_.stored_key))
    return {{}, "SCRAM proof does not match (wrong password)"};
  authenticated_ = true;
  client_key_ = std::move(client_key);
  return {"v=" + base64_encode(hmac_sha256(secret_.server_key, auth_message)), {}};
}

// ---- Client

ScramClient ScramClient::with_password(std::string_view password, std::string client_nonce) {
  ScramClient c;
  c.password_ = saslprep(password);
  c.client_nonce_ = client_nonce.empty() ? random_nonce() : std::move(client_nonce);
  return c;
}

ScramClient ScramClient::with_keys(ScramSecret secret, std::string client_key,
                                   std::string client_nonce) {
  ScramClient c;
  c.secret_ = std::move(secret);
  c.client_key_ = std::move(client_key);
  c.client_nonce_ = client_nonce.empty() ? random_nonce() : std::move(client_nonce);
  return c;
}

std::string ScramClient::client_first(std::string_view username) {
  // Like libpq: no channel binding, empty user name (the startup packet has it).
  std::string name;
  for (char c : username) {
    if (c == ',') name += "=2C";
    else if (c == '=') name += "=3D";
    else name += c;
  }
  client_first_bare_ = "n=" + name + ",r=" + client_nonce_;
  state_ = State::want_server_first;
  return "n,," + client_first_bare_;
}

ScramStep ScramClient::server_first(std::string_view msg) {
  if (state_ != State::want_server_first) return {{}, "unexpected SCRAM server-first-message"};
  state_ = State::failed;
  auto sf = parse_server_first(msg);
  if (!sf) return {{}, sf.error};
  if (sf->nonce.size() <= client_nonce_.size() ||
      sf->nonce.compare(0, client_nonce_.size(), client_nonce_) != 0)
    return {{}, "server nonce does not extend the client nonce"};
  std::string client_key, server_key, stored_key;
  if (secret_) {
    if (sf->salt != secret_->salt || sf->iterations != secret_->iterations)
      return {{}, "the server's SCRAM salt or iteration count differs from the auth_file secret"};
    client_key = client_key_;
    stored_key = secret_->stored_key;
    server_key = secret_->server_key;
  } else {
    Keys k = keys_from_salted(pbkdf2_sha256(password_, sf->salt, sf->iterations));
    client_key = std::move(k.client_key);
    stored_key = std::move(k.stored_key);
    server_key = std::move(k.server_key);
  }
  std::string without_proof = "c=biws,r=" + sf->nonce;  // biws = base64("n,,")
  std::string auth_message = client_first_bare_ + "," + sf->raw + "," + without_proof;
  std::string proof = xor_bytes(client_key, hmac_sha256(stored_key, auth_message));
  expected_server_signature_ = hmac_sha256(server_key, auth_message);
  state_ = State::want_server_final;
  return {without_proof + ",p=" + base64_encode(proof), {}};
}

ScramStep ScramClient::server_final(std::string_view msg) {
  if (state_ != State::want_server_final) return {{}, "unexpected SCRAM server-final-message"};
  state_ = State::failed;
  auto sf = parse_server_final(msg);
  if (!sf) return {{}, sf.error};
  if (!sf->error.empty()) return {{}, "server rejected SCRAM authentication: " + sf->error};
  if (!constant_time_equal(sf->verifier, expected_server_signature_))
    return {{}, "server signature is wrong (the server does not know the secret)"};
  state_ = State::done;
  return {{}, {}};
}

}  // namespace pgcohere::auth
