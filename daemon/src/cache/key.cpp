// cache_key(): length-prefixed fields, so that no two different part lists share an
// encoding (moving bytes from one part to the next changes a length).
#include "cache/key.h"

#include <openssl/sha.h>

#include <stdexcept>

namespace pgcohere::cache {
namespace {

// Bump when the encoding changes: old entries then simply stop matching.
constexpr std::string_view kVersion = "pgcohere-cache-key-1";

void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void put_bytes(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}

template <typename Int>
void put_ints(std::string& out, std::span<const Int> v) {
  put_u64(out, v.size());
  for (Int x : v) put_u64(out, static_cast<std::uint64_t>(static_cast<std::int64_t>(x)));
}

}  // namespace

std::string encode_key_parts(const KeyParts& p) {
  std::string out;
  std::size_t values = 0;
  for (const auto& v : p.param_values) values += 9 + (v ? v->size() : 0);
  out.reserve(256 + p.query.size() + values);
  put_bytes(out, kVersion);
  out += static_cast<char>(p.protocol);
  for (std::string_view s :
       {p.database, p.role, p.search_path, p.client_encoding, p.date_style, p.time_zone, p.interval_style,
        p.extra_float_digits, p.bytea_output, p.standard_conforming_strings, p.query, p.batch_shape})
    put_bytes(out, s);
  put_ints(out, p.param_types);
  put_u64(out, p.param_values.size());
  for (const auto& v : p.param_values) {
    out += v ? '\1' : '\0';
    if (v) put_bytes(out, *v);
  }
  put_ints(out, p.param_formats);
  put_ints(out, p.result_formats);
  return out;
}

std::string cache_key(const KeyParts& parts) {
  std::string encoded = encode_key_parts(parts);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  if (!SHA256(reinterpret_cast<const unsigned char*>(encoded.data()), encoded.size(), digest))
    throw std::runtime_error("SHA256 failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

}  // namespace pgcohere::cache
