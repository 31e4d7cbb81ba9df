// HMAC-SHA256 signatures of payloads (OpenSSL digests, RFC 2104 construction).
#include <openssl/evp.h>

#include <cstring>
#include <stdexcept>

#include "core.hpp"

namespace pgcohere::core {

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
        } else {
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

std::string HmacSha256::hex(std::string_view message) const {
    unsigned char inner[EVP_MAX_MD_SIZE], digest[EVP_MAX_MD_SIZE];
    unsigned int inner_len = 0, len = 0;
    check(EVP_MD_CTX_copy_ex(work_, inner_));
    check(EVP_DigestUpdate(work_, message.data(), message.size()));
    check(EVP_DigestFinal_ex(work_, inner, &inner_len));
    check(EVP_MD_CTX_copy_ex(work_, outer_));
    check(EVP_DigestUpdate(work_, inner, inner_len));
    check(EVP_DigestFinal_ex(work_, digest, &len));
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * len);
    for (unsigned int i = 0; i < len; ++i) {
        out.push_back(hex[digest[i] >> 4]);
        out.push_back(hex[digest[i] & 0xf]);
    }
    return out;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view message) { return HmacSha256(key).hex(message); }

}  // namespace pgcohere::core
