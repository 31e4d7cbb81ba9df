// libFuzzer target: properties of the wire contract shared by the extension and the daemon
// (common/contract/), checked on values the fuzzer builds:
// - decode(encode(x)) == x for any payload, and the extension's chunked encoding decodes,
//   chunk by chunk, to exactly its lines (an oversize line as the resync it becomes);
// - escaping never widens: an escaped value matches itself only, as a whole key and inside
//   a pattern, and is a literal;
// - one pattern covering another agrees with the matcher on keys, and is sound.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "contract/glob.h"
#include "contract/payload.h"

using namespace pgcohere::contract;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

EntryKind pick_kind(FuzzedDataProvider& in) {
  static constexpr EntryKind kinds[] = {EntryKind::key, EntryKind::pattern, EntryKind::tag,
                                        EntryKind::resync, EntryKind::cache_policy};
  return kinds[in.ConsumeIntegralInRange<int>(0, 4)];
}

std::string entry_text(FuzzedDataProvider& in, EntryKind kind) {
  if (kind == EntryKind::cache_policy)
    return std::to_string(in.ConsumeIntegralInRange<std::uint32_t>(1, 0xFFFFFFFFu));
  return in.ConsumeRandomLengthString(200);
}

void payload_round_trip(FuzzedDataProvider& in) {
  NotifyPayload x;
  x.epoch = in.ConsumeIntegral<std::uint64_t>();
  x.seq = in.ConsumeIntegral<std::uint64_t>();
  x.commit_us = in.ConsumeIntegral<std::uint64_t>();
  if (in.ConsumeBool()) x.pos = in.ConsumeIntegral<std::uint64_t>();
  int n = in.ConsumeIntegralInRange<int>(0, 20);
  for (int i = 0; i < n; ++i) {
    EntryKind kind = pick_kind(in);
    x.entries.push_back({kind, entry_text(in, kind)});
  }
  std::string db = in.ConsumeRandomLengthString(20), secret = in.ConsumeRandomLengthString(80);
  std::string wire = encode_payload(x, db, secret);
  auto back = decode_payload(wire, db, secret);
  check(back.ok() && *back.payload == x);
  auto unverified = parse_payload_unverified(wire);
  check(unverified.ok() && *unverified.payload == x);
  // any changed byte, of the body or of the signature line, is refused
  std::string forged = wire;
  std::size_t at = in.ConsumeIntegralInRange<std::size_t>(0, wire.size() - 1);
  forged[at] = static_cast<char>(forged[at] ^ (1 + in.ConsumeIntegralInRange<int>(0, 254)));
  check(!decode_payload(forged, db, secret).ok());
}

void chunked_encoding(FuzzedDataProvider& in) {
  std::vector<std::string> owned;
  int n = in.ConsumeIntegralInRange<int>(0, 60);
  for (int i = 0; i < n; ++i) {
    EntryKind kind = pick_kind(in);
    std::string text = entry_text(in, kind);
    if (kind != EntryKind::cache_policy && in.ConsumeBool())  // long lines: chunking, oversize
      text.append(in.ConsumeIntegralInRange<std::size_t>(0, 900), 'x');
    owned.push_back(entry_line(kind, text));
  }
  std::vector<std::string_view> lines(owned.begin(), owned.end());
  PayloadParams p;
  std::string db = in.ConsumeRandomLengthString(20);
  p.dbname = db;
  p.secret = "s3cret";
  p.epoch = in.ConsumeIntegral<std::uint64_t>();
  p.commit_us = in.ConsumeIntegral<std::uint64_t>();
  p.max_payload = in.ConsumeIntegralInRange<std::size_t>(400, kMaxPayload);
  p.pos = static_cast<PayloadParams::Pos>(in.ConsumeIntegralInRange<int>(0, 2));
  p.pos_start = in.ConsumeIntegral<std::uint64_t>();
  p.pos_end = in.ConsumeIntegral<std::uint64_t>();
  p.emit_empty = in.ConsumeBool();
  std::uint64_t first = in.ConsumeIntegralInRange<std::uint64_t>(0, 1ull << 62), seq = first;
  auto payloads = encode_payloads(lines, p, [&] { return seq++; });
  check(payloads.size() == seq - first);
  check(!payloads.empty() || (lines.empty() && !p.emit_empty));
  std::vector<std::string> decoded;
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    check(payloads[i].size() <= p.max_payload);
    auto r = decode_payload(payloads[i], db, "s3cret");
    check(r.ok());
    const NotifyPayload& got = *r.payload;
    check(got.epoch == p.epoch && got.seq == first + i && got.commit_us == p.commit_us);
    bool last = i + 1 == payloads.size();
    switch (p.pos) {
      case PayloadParams::Pos::none: check(!got.pos); break;
      case PayloadParams::Pos::seq: check(got.pos == got.seq); break;
      case PayloadParams::Pos::range: check(got.pos == (last ? p.pos_end : p.pos_start)); break;
    }
    for (const auto& e : got.entries) decoded.push_back(entry_line(e.kind, e.text));
  }
  const std::string oversize = entry_line(EntryKind::resync, "oversize-entry");
  check(decoded.size() == owned.size());
  for (std::size_t i = 0; i < owned.size(); ++i) check(decoded[i] == owned[i] || decoded[i] == oversize);
}

void escaping_never_widens(FuzzedDataProvider& in) {
  std::string value = in.ConsumeRandomLengthString(64), key = in.ConsumeRandomLengthString(64);
  if (in.ConsumeBool()) key = value;
  std::string escaped = glob_escape(value);
  check(is_literal(escaped));
  check(literal_prefix(escaped) == value);
  check(glob_match(escaped, key) == (key == value));
  // a rendered template: literal text, the escaped value, a trailing '*'
  check(glob_match("t:" + escaped + "*", "t:" + key) == (key.compare(0, value.size(), value) == 0));
  check(glob_covers_key(parse_glob(escaped), key) == (key == value));
}

void cover_agrees_with_match(FuzzedDataProvider& in) {
  std::string cover = in.ConsumeRandomLengthString(48), subject = in.ConsumeRandomLengthString(48);
  std::string key = in.ConsumeRandomLengthString(48);
  Glob c = parse_glob(cover);
  bool matched = glob_match(cover, key);
  check(glob_covers(c, literal_glob(key)) == matched);
  check(glob_covers_key(c, key) == matched);
  if (glob_covers(c, parse_glob(subject)) && glob_match(subject, key)) check(matched);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: payload_round_trip(in); break;
    case 1: chunked_encoding(in); break;
    case 2: escaping_never_widens(in); break;
    case 3: cover_agrees_with_match(in); break;
  }
  return 0;
}
