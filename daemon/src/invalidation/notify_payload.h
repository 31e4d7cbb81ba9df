// Codec of the extension's NOTIFY payload (docs/protocol.md, version 1): decode and verify
// a signed payload, and encode one (tests, benchmarks). Pure: bytes in, messages out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::invalidation {

// cache_policy: "c <oid>", the query-cache policy of relation <oid> (or what
// pgcohere.cache_catalog() shows about its name) changed: reload the catalog. Its text is
// the OID in decimal (1..4294967295); parse it with parse_relid().
enum class EntryKind : char { key = 'k', pattern = 'p', tag = 't', resync = 'r', cache_policy = 'c' };

struct PayloadEntry {
  EntryKind kind;
  std::string text;  // unescaped (the `\\`, `\n`, `\r` line escapes removed)
  friend bool operator==(const PayloadEntry&, const PayloadEntry&) = default;
};

struct NotifyPayload {
  std::uint64_t epoch = 0;
  std::uint64_t seq = 0;
  std::uint64_t commit_us = 0;
  // Optional 5th header field: every commit whose read-your-writes position (the
  // extension's pgcohere.published) is <= pos is in this payload or an earlier one (lower
  // seq) of the same epoch. Absent in payloads of older extensions.
  std::optional<std::uint64_t> pos;
  std::vector<PayloadEntry> entries;
  friend bool operator==(const NotifyPayload&, const NotifyPayload&) = default;
};

enum class PayloadError {
  none,
  too_short,
  bad_version,      // header does not start with "pgc1 "
  bad_header,       // epoch / seq / commit-us missing, pos or any not decimal u64
  bad_entry,        // entry line without a known kind letter and a space
  bad_escape,       // backslash followed by something other than \ n r, or at end of line
  bad_signature_line,  // no "sig " + 64 lowercase hex at the end
  signature_mismatch,
};

// Human-readable reason, stable enough for logs and tests.
const char* to_string(PayloadError error);

struct DecodeResult {
  std::optional<NotifyPayload> payload;
  PayloadError error = PayloadError::none;
  std::string detail;  // where it went wrong (line number, field)
  bool ok() const { return payload.has_value(); }
};

// Parses `payload` and checks its signature: HMAC-SHA256(secret, dbname LF body), compared
// in constant time. The signature is checked before the body is interpreted, so a forged
// payload never reaches the entry parser's output.
DecodeResult decode_payload(std::string_view payload, std::string_view dbname,
                            std::string_view secret);

// Parses without checking the signature (the signature line must still be well formed).
// For the fuzzer and for tests of the grammar.
DecodeResult parse_payload_unverified(std::string_view payload);

// Builds a signed payload (tests, benchmarks, tools). Texts are escaped here.
std::string encode_payload(const NotifyPayload& payload, std::string_view dbname,
                           std::string_view secret);

// The OID of a cache_policy entry: decimal digits only, 1..4294967295, no leading zero.
std::optional<std::uint32_t> parse_relid(std::string_view text);

// Text escaping of one entry line (exposed for tests).
std::string escape_text(std::string_view text);
std::optional<std::string> unescape_text(std::string_view text);

// Lowercase hex HMAC-SHA256(secret, dbname LF body).
std::string sign_body(std::string_view body, std::string_view dbname, std::string_view secret);

// Secret file content with trailing whitespace removed, as the extension reads it.
std::string trim_secret(std::string_view content);

}  // namespace pgcohere::invalidation
