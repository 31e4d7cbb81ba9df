// The invalidation wire contract between the extension (which signs and sends) and the
// daemon (which verifies and purges): the NOTIFY payload, version 1 (docs/protocol.md).
// One definition, compiled into both builds; pure (no PostgreSQL, no Boost), OpenSSL's
// libcrypto for the signature (contract/hmac.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "contract/hmac.h"

namespace pgcohere::contract {

// cache_policy: "c <oid>", the query-cache policy of relation <oid> (or what
// pgcohere.cache_catalog() shows about its name) changed: reload the catalog. Its text is
// the OID in decimal (1..4294967295); parse it with parse_relid().
enum class EntryKind : char {
  key = 'k',
  pattern = 'p',
  tag = 't',
  resync = 'r',
  cache_policy = 'c'
};

// Whether a tag entry's text is one the query cache tags its entries with (tbl:, row:, all:;
// docs/cache.md). A watched table's own `table:<schema>.<table>` tag is not: no entry
// carries it. Only commits that publish the cache's tags (or a policy change, or a resync)
// move a session's pgcohere.published, and only their purges move the daemon's watermark.
inline bool is_query_cache_tag(std::string_view tag) {
  return tag.starts_with("tbl:") || tag.starts_with("row:") || tag.starts_with("all:");
}

// NOTIFY refuses payloads of 8000 bytes or more (NOTIFY_PAYLOAD_MAX_LENGTH).
inline constexpr std::size_t kMaxPayload = 7999;

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
  bad_version,         // header does not start with "pgc1 "
  bad_header,          // epoch / seq / commit-us missing, pos or any not decimal u64
  bad_entry,           // entry line without a known kind letter and a space
  bad_escape,          // backslash followed by something other than \ n r, or at end of line
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

// ---- decoding (the daemon)

// Parses `payload` and checks its signature: HMAC-SHA256(secret, dbname LF body), compared
// in constant time. The signature is checked before the body is interpreted, so a forged
// payload never reaches the entry parser's output.
DecodeResult decode_payload(std::string_view payload, std::string_view dbname,
                            std::string_view secret);
// The same with the secret's prepared key.
DecodeResult decode_payload(std::string_view payload, std::string_view dbname,
                            const HmacSha256& key);

// Parses without checking the signature (the signature line must still be well formed).
// For the fuzzer and for tests of the grammar.
DecodeResult parse_payload_unverified(std::string_view payload);

// ---- encoding (the extension; tests, benchmarks and tools of the daemon)

// One signed payload of exactly these fields and entries (no size limit applied).
std::string encode_payload(const NotifyPayload& payload, std::string_view dbname,
                           std::string_view secret);

// One entry line without its LF: kind, space, text with \ LF CR escaped.
std::string entry_line(EntryKind kind, std::string_view text);
inline std::string entry_line(char kind, std::string_view text) {
  return entry_line(static_cast<EntryKind>(kind), text);
}

// Splits entry lines (each without LF, as entry_line() makes them) into signed payloads
// below max_payload bytes. next_seq is called once per payload, in order. A line too long
// to fit any payload is replaced by a resync entry, so nothing is silently dropped.
struct PayloadParams {
  std::string_view dbname;
  std::string_view secret;
  const HmacSha256* signer = nullptr;  // the secret's prepared key, if the caller keeps one
  std::uint64_t epoch = 0;
  std::uint64_t commit_us = 0;
  std::size_t max_payload = kMaxPayload;
  // The header's optional pos field: the highest commit position a payload covers, for
  // read-your-writes. none: no field; seq: each payload's own seq (direct mode, where a
  // commit's position is its seq); range: the last payload carries pos_end, the ones before
  // it pos_start (preload mode: the ring bytes of the batch's commits are covered only once
  // its last chunk is out).
  enum class Pos { none, seq, range } pos = Pos::none;
  std::uint64_t pos_start = 0;
  std::uint64_t pos_end = 0;
  // No lines: still one payload without entries (a ring batch of markers only must report
  // its position).
  bool emit_empty = false;
};
std::vector<std::string> encode_payloads(const std::vector<std::string_view>& lines,
                                         const PayloadParams& params,
                                         const std::function<std::uint64_t()>& next_seq);

// ---- pieces of the grammar

// The OID of a cache_policy entry: decimal digits only, 1..4294967295, no leading zero.
std::optional<std::uint32_t> parse_relid(std::string_view text);

// Text escaping of one entry line: `\` -> `\\`, LF -> `\n`, CR -> `\r`.
std::string escape_text(std::string_view text);
std::optional<std::string> unescape_text(std::string_view text);

// Lowercase hex HMAC-SHA256(secret, dbname LF body).
std::string sign_body(std::string_view body, std::string_view dbname, std::string_view secret);

// The secret file's content with trailing whitespace removed, as both sides read it.
std::string trim_secret(std::string_view content);

}  // namespace pgcohere::contract
