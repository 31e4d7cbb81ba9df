// Exact renderings of integer and uuid values; text values need none (the output of text
// and varchar is the value itself).
#include "cache/values.h"

#include <limits>

namespace pgcohere::cache {
namespace {

bool c_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool in_range(std::int64_t v, ColumnType t) {
  switch (t) {
    case ColumnType::int2:
      return v >= std::numeric_limits<std::int16_t>::min() && v <= std::numeric_limits<std::int16_t>::max();
    case ColumnType::int4:
      return v >= std::numeric_limits<std::int32_t>::min() && v <= std::numeric_limits<std::int32_t>::max();
    case ColumnType::int8:
      return true;
    default:
      return false;
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string uuid_text(const unsigned char (&b)[16]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 15];
  }
  return out;
}

}  // namespace

ColumnType column_type(std::string_view t) {
  if (t == "int2") return ColumnType::int2;
  if (t == "int4") return ColumnType::int4;
  if (t == "int8") return ColumnType::int8;
  if (t == "text") return ColumnType::text;
  if (t == "varchar") return ColumnType::varchar;
  if (t == "uuid") return ColumnType::uuid;
  return ColumnType::other;
}

std::optional<std::string> canonical_integer(std::string_view s, ColumnType t) {
  std::size_t i = 0;
  while (i < s.size() && c_space(s[i])) ++i;
  bool negative = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) negative = s[i++] == '-';
  std::size_t digits_start = i;
  // Accumulate negatively so that the int64 minimum fits.
  std::int64_t v = 0;
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    int d = s[i] - '0';
    if (v < kMin / 10 || (v == kMin / 10 && d > -(kMin % 10))) return std::nullopt;
    v = v * 10 - d;
  }
  if (i == digits_start) return std::nullopt;
  while (i < s.size() && c_space(s[i])) ++i;
  if (i != s.size()) return std::nullopt;
  if (!negative) {
    if (v == kMin) return std::nullopt;
    v = -v;
  }
  if (!in_range(v, t)) return std::nullopt;
  return std::to_string(v);
}

std::optional<std::string> canonical_uuid(std::string_view s) {
  // uuid.c string_to_uuid(): no whitespace, braces only as a pair around the value.
  std::size_t i = 0;
  bool braces = !s.empty() && s[0] == '{';
  if (braces) ++i;
  unsigned char b[16];
  for (int k = 0; k < 16; ++k) {
    if (i + 2 > s.size()) return std::nullopt;
    int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    b[k] = static_cast<unsigned char>(hi << 4 | lo);
    i += 2;
    if (i < s.size() && s[i] == '-' && k % 2 == 1 && k < 15) ++i;
  }
  if (braces) {
    if (i >= s.size() || s[i] != '}') return std::nullopt;
    ++i;
  }
  if (i != s.size()) return std::nullopt;
  return uuid_text(b);
}

std::optional<std::string> binary_integer(std::string_view bytes, std::uint32_t declared, ColumnType t) {
  std::size_t width;
  switch (declared == oid::unspecified ? (t == ColumnType::int2   ? oid::int2
                                          : t == ColumnType::int4 ? oid::int4
                                          : t == ColumnType::int8 ? oid::int8
                                                                  : oid::unspecified)
                                       : declared) {
    case oid::int2:
      width = 2;
      break;
    case oid::int4:
      width = 4;
      break;
    case oid::int8:
      width = 8;
      break;
    default:
      return std::nullopt;
  }
  if (bytes.size() != width) return std::nullopt;
  std::uint64_t u = 0;
  for (unsigned char c : bytes) u = u << 8 | c;
  std::int64_t v;
  if (width == 2)
    v = static_cast<std::int16_t>(u);
  else if (width == 4)
    v = static_cast<std::int32_t>(u);
  else
    v = static_cast<std::int64_t>(u);
  if (!in_range(v, t)) return std::nullopt;
  return std::to_string(v);
}

std::optional<std::string> binary_uuid(std::string_view bytes) {
  if (bytes.size() != 16) return std::nullopt;
  unsigned char b[16];
  for (int i = 0; i < 16; ++i) b[i] = static_cast<unsigned char>(bytes[i]);
  return uuid_text(b);
}

}  // namespace pgcohere::cache
