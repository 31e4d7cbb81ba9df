// HMAC-SHA256 with a prepared key (see hmac.h).
#include "contract/hmac.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <new>
#include <stdexcept>

namespace pgcohere::contract {

namespace {

constexpr std::size_t kBlock = 64;  // SHA-256 block size

void check(int ok) {
  if (ok != 1) throw std::runtime_error("HMAC-SHA256 failed");
}

EVP_MD_CTX* new_ctx() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) throw std::bad_alloc();
  return ctx;
}

}  // namespace

HmacSha256::HmacSha256(std::string_view key) : inner_(new_ctx()), outer_(nullptr), work_(nullptr) {
  try {
    outer_ = new_ctx();
    work_ = new_ctx();
    unsigned char k[kBlock] = {0};
    if (key.size() > kBlock) {
      unsigned int len = 0;
      check(EVP_Digest(key.data(), key.size(), k, &len, EVP_sha256(), nullptr));
    } else if (!key.empty()) {
      std::memcpy(k, key.data(), key.size());
    }
    unsigned char ipad[kBlock], opad[kBlock];
    for (std::size_t i = 0; i < kBlock; ++i) {
      ipad[i] = k[i] ^ 0x36;
      opad[i] = k[i] ^ 0x5c;
    }
    check(EVP_DigestInit_ex(inner_, EVP_sha256(), nullptr));
    check(EVP_DigestUpdate(inner_, ipad, kBlock));
    check(EVP_DigestInit_ex(outer_, EVP_sha256(), nullptr));
    check(EVP_DigestUpdate(outer_, opad, kBlock));
  } catch (...) {
    EVP_MD_CTX_free(inner_);
    EVP_MD_CTX_free(outer_);
    EVP_MD_CTX_free(work_);
    throw;
  }
}

HmacSha256::~HmacSha256() {
  EVP_MD_CTX_free(inner_);
  EVP_MD_CTX_free(outer_);
  EVP_MD_CTX_free(work_);
}

HmacSha256::Digest HmacSha256::digest(std::string_view message) const {
  unsigned char inner[EVP_MAX_MD_SIZE];
  unsigned int inner_len = 0, len = 0;
  Digest out{};
  check(EVP_MD_CTX_copy_ex(work_, inner_));
  check(EVP_DigestUpdate(work_, message.data(), message.size()));
  check(EVP_DigestFinal_ex(work_, inner, &inner_len));
  check(EVP_MD_CTX_copy_ex(work_, outer_));
  check(EVP_DigestUpdate(work_, inner, inner_len));
  check(EVP_DigestFinal_ex(work_, out.data(), &len));
  if (len != out.size()) throw std::runtime_error("HMAC-SHA256 failed");
  return out;
}

std::string HmacSha256::hex(std::string_view message) const { return to_hex(digest(message)); }

std::string to_hex(const HmacSha256::Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * digest.size());
  for (unsigned char b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

bool digest_equal(const HmacSha256::Digest& a, const HmacSha256::Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  return HmacSha256(key).hex(message);
}

}  // namespace pgcohere::contract
