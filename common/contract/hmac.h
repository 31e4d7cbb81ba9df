// HMAC-SHA256 of payload signatures (RFC 2104 over OpenSSL's SHA-256 digest). Both the
// extension and the daemon link libcrypto, so the one implementation lives here on it.
#pragma once

#include <array>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace pgcohere::contract {

// One key, its inner and outer digest states computed once: signing or checking a message
// then costs two state copies and the hash blocks of the message, not OpenSSL's per-call
// setup of HMAC() (algorithm lookup, contexts), which took about a sixth of the extension's
// publisher CPU per NOTIFY. Not thread-safe (one scratch context); copying is disabled.
class HmacSha256 {
 public:
  using Digest = std::array<unsigned char, 32>;

  explicit HmacSha256(std::string_view key);
  ~HmacSha256();
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;

  Digest digest(std::string_view message) const;
  std::string hex(std::string_view message) const;  // 64 lowercase hex digits

 private:
  ::evp_md_ctx_st* inner_;  // EVP_MD_CTX after key ^ ipad
  ::evp_md_ctx_st* outer_;  // EVP_MD_CTX after key ^ opad
  ::evp_md_ctx_st* work_;
};

// HMAC-SHA256 as 64 lowercase hex digits, with a key used once.
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

// Lowercase hex of a digest.
std::string to_hex(const HmacSha256::Digest& digest);

// Constant-time comparison of two digests (CRYPTO_memcmp).
bool digest_equal(const HmacSha256::Digest& a, const HmacSha256::Digest& b);

}  // namespace pgcohere::contract
