// Bounds-checked reading and writing of PostgreSQL wire primitives (network byte order,
// NUL-terminated strings). Pure: no I/O, no allocation beyond the output buffer.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace pgcohere::protocol {

// Reads a message body. Every accessor returns nullopt past the end instead of reading
// out of bounds, so a malformed body is an error, never undefined behaviour.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  std::optional<uint8_t> u8() {
    if (pos_ + 1 > data_.size()) return std::nullopt;
    return static_cast<uint8_t>(data_[pos_++]);
  }
  std::optional<int16_t> i16() {
    if (pos_ + 2 > data_.size()) return std::nullopt;
    auto p = reinterpret_cast<const unsigned char*>(data_.data() + pos_);
    pos_ += 2;
    return static_cast<int16_t>((p[0] << 8) | p[1]);
  }
  std::optional<int32_t> i32() {
    if (pos_ + 4 > data_.size()) return std::nullopt;
    auto p = reinterpret_cast<const unsigned char*>(data_.data() + pos_);
    pos_ += 4;
    return static_cast<int32_t>((uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
                                (uint32_t(p[2]) << 8) | uint32_t(p[3]));
  }
  // A NUL-terminated string; the view excludes the terminator.
  std::optional<std::string_view> cstr() {
    auto end = data_.find('\0', pos_);
    if (end == std::string_view::npos) return std::nullopt;
    auto s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  std::optional<std::string_view> bytes(size_t n) {
    if (n > data_.size() - pos_) return std::nullopt;
    auto s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view rest() const { return data_.substr(pos_); }
  size_t position() const { return pos_; }
  bool at_end() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

inline int32_t read_i32(const void* p) {
  auto b = static_cast<const unsigned char*>(p);
  return static_cast<int32_t>((uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) |
                              uint32_t(b[3]));
}

// Appends wire primitives to a string. begin(type) ... end() frames one message and
// patches its length, so encoders never compute lengths by hand.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  Writer& begin(char type) {
    out_.push_back(type);
    start_ = out_.size();
    i32(0);
    return *this;
  }
  // An untyped packet (startup, SSLRequest, CancelRequest): length only.
  Writer& begin_untyped() {
    start_ = out_.size();
    i32(0);
    return *this;
  }
  void end() {
    auto len = static_cast<uint32_t>(out_.size() - start_);
    out_[start_] = static_cast<char>(len >> 24);
    out_[start_ + 1] = static_cast<char>(len >> 16);
    out_[start_ + 2] = static_cast<char>(len >> 8);
    out_[start_ + 3] = static_cast<char>(len);
  }
  Writer& u8(uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  Writer& i16(int16_t v) {
    out_.push_back(static_cast<char>((v >> 8) & 0xff));
    out_.push_back(static_cast<char>(v & 0xff));
    return *this;
  }
  Writer& i32(int32_t v) {
    auto u = static_cast<uint32_t>(v);
    out_.push_back(static_cast<char>(u >> 24));
    out_.push_back(static_cast<char>(u >> 16));
    out_.push_back(static_cast<char>(u >> 8));
    out_.push_back(static_cast<char>(u));
    return *this;
  }
  Writer& cstr(std::string_view s) {
    out_.append(s);
    out_.push_back('\0');
    return *this;
  }
  Writer& bytes(std::string_view s) {
    out_.append(s);
    return *this;
  }

 private:
  std::string& out_;
  size_t start_ = 0;
};

}  // namespace pgcohere::protocol
