// NOTIFY payload codec, version 1 (see payload.h and docs/protocol.md).
#include "contract/payload.h"

#include <charconv>

namespace pgcohere::contract {
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

// "pgc1 epoch seq commit-us [pos]" LF
std::string header(std::uint64_t epoch, std::uint64_t seq, std::uint64_t commit_us,
                   std::optional<std::uint64_t> pos) {
  std::string h =
      "pgc1 " + std::to_string(epoch) + " " + std::to_string(seq) + " " + std::to_string(commit_us);
  if (pos) h += " " + std::to_string(*pos);
  h.push_back('\n');
  return h;
}

// What is signed: the database name, LF, the body (header and entry lines).
std::string signed_message(std::string_view dbname, std::string_view body) {
  std::string message;
  message.reserve(dbname.size() + 1 + body.size());
  message.append(dbname).push_back('\n');
  message.append(body);
  return message;
}

// Appends the signature line to `body`.
std::string sign(std::string body, std::string_view dbname, const HmacSha256& key) {
  std::string sig = key.hex(signed_message(dbname, body));
  body += kSigPrefix;
  body += sig;
  return body;
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
  std::size_t at = 0;
  while (at < body.size()) {
    std::size_t lf = body.find('\n', at);
    if (lf == std::string_view::npos)  // split_signature guarantees a final LF
      return fail(PayloadError::too_short, "unterminated line");
    std::string_view line = body.substr(at, lf - at);
    at = lf + 1;
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
      case 'k':
        kind = EntryKind::key;
        break;
      case 'p':
        kind = EntryKind::pattern;
        break;
      case 't':
        kind = EntryKind::tag;
        break;
      case 'r':
        kind = EntryKind::resync;
        break;
      case 'c':
        kind = EntryKind::cache_policy;
        break;
      default:
        return fail(PayloadError::bad_entry, "line " + std::to_string(line_no));
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
    case PayloadError::none:
      return "ok";
    case PayloadError::too_short:
      return "payload too short";
    case PayloadError::bad_version:
      return "unknown payload version";
    case PayloadError::bad_header:
      return "malformed header";
    case PayloadError::bad_entry:
      return "malformed entry";
    case PayloadError::bad_escape:
      return "bad escape in entry text";
    case PayloadError::bad_signature_line:
      return "missing or malformed signature line";
    case PayloadError::signature_mismatch:
      return "signature mismatch";
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
  out.reserve(text.size() + 2);
  for (char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out.push_back(c);
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
      case '\\':
        out.push_back('\\');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      default:
        return std::nullopt;
    }
  }
  return out;
}

std::string entry_line(EntryKind kind, std::string_view text) {
  std::string line;
  line.reserve(text.size() + 4);
  line.push_back(static_cast<char>(kind));
  line.push_back(' ');
  line += escape_text(text);
  return line;
}

std::string sign_body(std::string_view body, std::string_view dbname, std::string_view secret) {
  return HmacSha256(secret).hex(signed_message(dbname, body));
}

std::string trim_secret(std::string_view content) {
  std::size_t end = content.size();
  while (end > 0 &&
         (content[end - 1] == ' ' || content[end - 1] == '\t' || content[end - 1] == '\n' ||
          content[end - 1] == '\r' || content[end - 1] == '\f' || content[end - 1] == '\v'))
    --end;
  return std::string(content.substr(0, end));
}

DecodeResult parse_payload_unverified(std::string_view payload) {
  std::string_view body, hex;
  if (!split_signature(payload, body, hex))
    return fail(PayloadError::bad_signature_line,
                "payload must end with \"sig \" and 64 hex digits");
  return parse_body(body);
}

DecodeResult decode_payload(std::string_view payload, std::string_view dbname,
                            const HmacSha256& key) {
  std::string_view body, hex;
  if (!split_signature(payload, body, hex))
    return fail(PayloadError::bad_signature_line,
                "payload must end with \"sig \" and 64 hex digits");
  HmacSha256::Digest given{};
  for (std::size_t i = 0; i < given.size(); ++i)
    given[i] = static_cast<unsigned char>(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
  if (!digest_equal(given, key.digest(signed_message(dbname, body))))
    return fail(PayloadError::signature_mismatch, "HMAC-SHA256 does not match");
  return parse_body(body);
}

DecodeResult decode_payload(std::string_view payload, std::string_view dbname,
                            std::string_view secret) {
  return decode_payload(payload, dbname, HmacSha256(secret));
}

std::string encode_payload(const NotifyPayload& payload, std::string_view dbname,
                           std::string_view secret) {
  std::string body = header(payload.epoch, payload.seq, payload.commit_us, payload.pos);
  for (const auto& e : payload.entries) {
    body += entry_line(e.kind, e.text);
    body.push_back('\n');
  }
  return sign(std::move(body), dbname, HmacSha256(secret));
}

std::vector<std::string> encode_payloads(const std::vector<std::string_view>& lines,
                                         const PayloadParams& p,
                                         const std::function<std::uint64_t()>& next_seq) {
  // Worst case header: "pgc1 " + 4 x 20 digits + 3 spaces + LF; signature line "sig " + 64.
  constexpr std::size_t kHeaderMax = kMagic.size() + 4 * 20 + 3 + 1;
  constexpr std::size_t kSigLen = kSigPrefix.size() + kSigHexLen;
  const std::size_t budget = p.max_payload - kHeaderMax - kSigLen;

  std::vector<std::string> out;
  if (lines.empty() && !p.emit_empty) return out;
  std::vector<std::vector<std::string_view>> chunks(1);
  std::size_t used = 0;
  static const std::string oversize = entry_line(EntryKind::resync, "oversize-entry");
  for (std::string_view line : lines) {
    if (line.size() + 1 > budget) line = oversize;
    if (used + line.size() + 1 > budget) {
      chunks.emplace_back();
      used = 0;
    }
    chunks.back().push_back(line);
    used += line.size() + 1;
  }
  std::optional<HmacSha256> own_key;
  const HmacSha256& key = p.signer ? *p.signer : own_key.emplace(p.secret);
  out.reserve(chunks.size());
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    std::uint64_t seq = next_seq();
    std::optional<std::uint64_t> pos;
    switch (p.pos) {
      case PayloadParams::Pos::none:
        break;
      case PayloadParams::Pos::seq:
        pos = seq;
        break;
      case PayloadParams::Pos::range:
        pos = i + 1 == chunks.size() ? p.pos_end : p.pos_start;
        break;
    }
    std::string body = header(p.epoch, seq, p.commit_us, pos);
    for (std::string_view line : chunks[i]) {
      body.append(line);
      body.push_back('\n');
    }
    out.push_back(sign(std::move(body), p.dbname, key));
  }
  return out;
}

}  // namespace pgcohere::contract
