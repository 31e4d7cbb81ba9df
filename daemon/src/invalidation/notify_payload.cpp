// NOTIFY payload codec, version 1 (docs/protocol.md).
#include "invalidation/notify_payload.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>

namespace pgcohere::invalidation {
namespace {

constexpr std::string_view kMagic = "pgc1 ";
constexpr std::string_view kSigPrefix = "sig ";
constexpr std::size_t kSigHexLen = 64;

DecodeResult fail(PayloadError error, std::string detail) {
  DecodeResult r;
  r.error = error;
  r.detail = std::move(detail);
  return r;
}

bool parse_u64(std::string_view text, std::uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase is not allowed by the grammar
}

std::array<unsigned char, 32> hmac(std::string_view body, std::string_view dbname,
                                   std::string_view secret) {
  std::string message;
  message.reserve(dbname.size() + 1 + body.size());
  message.append(dbname).push_back('\n');
  message.append(body);
  std::array<unsigned char, 32> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(), &len);
  return mac;
}

// Splits off the signature line; `body` keeps its final LF.
bool split_signature(std::string_view payload, std::string_view& body, std::string_view& hex) {
  constexpr std::size_t tail = kSigPrefix.size() + kSigHexLen;
  if (payload.size() < tail + 1) return false;
  std::string_view sig_line = payload.substr(payload.size() - tail);
  if (sig_line.substr(0, kSigPrefix.size()) != kSigPrefix) return false;
  if (payload[payload.size() - tail - 1] != '\n') return false;
  hex = sig_line.substr(kSigPrefix.size());
  for (char c : hex)
    if (hex_value(c) < 0) return false;
  body = payload.substr(0, payload.size() - tail);
  return true;
}

DecodeResult parse_body(std::string_view body) {
  // body = header LF *(entry LF)
  NotifyPayload out;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t lf = body.find('\n', pos);
    if (lf == std::string_view::npos)  // split_signature guarantees a final LF
      return fail(PayloadError::too_short, "unterminated line");
    std::string_view line = body.substr(pos, lf - pos);
    pos = lf + 1;
    ++line_no;
    if (line_no == 1) {
      if (line.substr(0, kMagic.size()) != kMagic)
        return fail(PayloadError::bad_version, "header must start with \"pgc1 \"");
      // epoch SP seq SP commit-us [SP pos]
      std::string_view rest = line.substr(kMagic.size());
      std::uint64_t pos = 0;
      std::uint64_t* fields[4] = {&out.epoch, &out.seq, &out.commit_us, &pos};
      const char* names[4] = {"epoch", "seq", "commit-us", "pos"};
      for (int i = 0; i < 4; ++i) {
        std::size_t sp = rest.find(' ');
        bool last = sp == std::string_view::npos;
        if ((i < 2 && last) || !parse_u64(rest.substr(0, sp), *fields[i]))
          return fail(PayloadError::bad_header, std::string("bad ") + names[i]);
        if (i == 3) {
          if (!last) return fail(PayloadError::bad_header, "extra header field");
          out.pos = pos;
        }
        if (last) break;
        rest = rest.substr(sp + 1);
      }
      continue;
    }
    if (line.size() < 2 || line[1] != ' ')
      return fail(PayloadError::bad_entry, "line " + std::to_string(line_no));
    EntryKind kind;
    switch (line[0]) {
      case 'k': kind = EntryKind::key; break;
      case 'p': kind = EntryKind::pattern; break;
      case 't': kind = EntryKind::tag; break;
      case 'r': kind = EntryKind::resync; break;
      case 'c': kind = EntryKind::cache_policy; break;
      default: return fail(PayloadError::bad_entry, "line " + std::to_string(line_no));
    }
    auto text = unescape_text(line.substr(2));
    if (!text) return fail(PayloadError::bad_escape, "line " + std::to_string(line_no));
    if (kind == EntryKind::cache_policy && !parse_relid(*text))
      return fail(PayloadError::bad_entry, "line " + std::to_string(line_no) + ": not an OID");
    out.entries.push_back({kind, std::move(*text)});
  }
  if (line_no == 0) return fail(PayloadError::too_short, "no header");
  DecodeResult r;
  r.payload = std::move(out);
  return r;
}

}  // namespace

const char* to_string(PayloadError error) {
  switch (error) {
    case PayloadError::none: return "ok";
    case PayloadError::too_short: return "payload too short";
    case PayloadError::bad_version: return "unknown payload version";
    case PayloadError::bad_header: return "malformed header";
    case PayloadError::bad_entry: return "malformed entry";
    case PayloadError::bad_escape: return "bad escape in entry text";
    case PayloadError::bad_signature_line: return "missing or malformed signature line";
    case PayloadError::signature_mismatch: return "signature mismatch";
  }
  return "unknown error";
}

std::optional<std::uint32_t> parse_relid(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty() || text.size() > 10 || text[0] == '0' || !parse_u64(text, value) ||
      value > 0xFFFFFFFFull)
    return std::nullopt;
  return static_cast<std::uint32_t>(value);
}

std::string escape_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::optional<std::string> unescape_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r') return std::nullopt;  // raw CR cannot appear: the encoder escapes it
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (++i == text.size()) return std::nullopt;
    switch (text[i]) {
      case '\\': out.push_back('\\'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      default: return std::nullopt;
    }
  }
  return out;
}

std::string sign_body(std::string_view body, std::string_view dbname, std::string_view secret) {
  static constexpr char digits[] = "0123456789abcdef";
  auto mac = hmac(body, dbname, secret);
  std::string hex;
  hex.reserve(kSigHexLen);
  for (unsigned char b : mac) {
    hex.push_back(digits[b >> 4]);
    hex.push_back(digits[b & 15]);
  }
  return hex;
}

std::string trim_secret(std::string_view content) {
  std::size_t end = content.size();
  while (end > 0 && (content[end - 1] == ' ' || content[end - 1] == '\t' ||
                     content[end - 1] == '\n' || content[end - 1] == '\r' ||
                     content[end - 1] == '\f' || content[end - 1] == '\v'))
    --end;
  return std::string(content.substr(0, end));
}

DecodeResult parse_payload_unverified(std::string_view payload) {
  std::string_view body, hex;
  if (!split_signature(payload, body, hex))
    return fail(PayloadError::bad_signature_line, "payload must end with \"sig \" and 64 hex digits");
  return parse_body(body);
}

DecodeResult decode_payload(std::string_view payload, std::string_view dbname,
                            std::string_view secret) {
  std::string_view body, hex;
  if (!split_signature(payload, body, hex))
    return fail(PayloadError::bad_signature_line, "payload must end with \"sig \" and 64 hex digits");
  std::array<unsigned char, 32> given{};
  for (std::size_t i = 0; i < given.size(); ++i)
    given[i] = static_cast<unsigned char>(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
  auto expected = hmac(body, dbname, secret);
  if (CRYPTO_memcmp(given.data(), expected.data(), given.size()) != 0)
    return fail(PayloadError::signature_mismatch, "HMAC-SHA256 does not match");
  return parse_body(body);
}

std::string encode_payload(const NotifyPayload& payload, std::string_view dbname,
                           std::string_view secret) {
  std::string body = "pgc1 " + std::to_string(payload.epoch) + " " + std::to_string(payload.seq) +
                     " " + std::to_string(payload.commit_us) +
                     (payload.pos ? " " + std::to_string(*payload.pos) : std::string()) + "\n";
  for (const auto& e : payload.entries) {
    body.push_back(static_cast<char>(e.kind));
    body.push_back(' ');
    body += escape_text(e.text);
    body.push_back('\n');
  }
  return body + "sig " + sign_body(body, dbname, secret);
}

}  // namespace pgcohere::invalidation
