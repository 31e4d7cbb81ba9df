// Framing of PostgreSQL v3 byte streams (see frame.h).
#include "protocol/frame.h"

#include <algorithm>

#include "protocol/wire.h"

namespace pgcohere::protocol {

Frame FrameDecoder::next(std::string_view input) {
  Frame f;
  if (remaining_ != 0) {
    if (input.empty()) return f;
    size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, input.size()));
    remaining_ -= n;
    f.kind = Frame::Kind::passthrough;
    f.consumed = n;
    return f;
  }
  if (input.size() < 5) return f;
  char type = input[0];
  uint32_t len = static_cast<uint32_t>(read_i32(input.data() + 1));
  if (len < kMinTypedLength || len > 0x7fffffffu) {
    f.kind = Frame::Kind::error;
    f.error = "invalid message length";
    return f;
  }
  if (len > max_packet_size_) {
    f.kind = Frame::Kind::error;
    f.error = "message too long (" + std::to_string(len) + " bytes, max_packet_size " +
              std::to_string(max_packet_size_) + ")";
    return f;
  }
  size_t total = size_t{len} + 1;
  if (input.size() >= total) {
    f.kind = Frame::Kind::message;
    f.type = type;
    f.body = input.substr(5, len - 4);
    f.consumed = total;
    return f;
  }
  if ((type == 'd' || (type == 'D' && side_ == Side::backend)) && len > stream_threshold_) {
    f.kind = Frame::Kind::passthrough;
    f.type = type;
    f.first_piece = true;
    f.length = len;
    f.consumed = input.size();
    remaining_ = total - input.size();
    return f;
  }
  return f;
}

StartupFrame next_startup_frame(std::string_view input) {
  StartupFrame f;
  if (input.size() < 4) return f;
  uint32_t len = static_cast<uint32_t>(read_i32(input.data()));
  if (len < 8 || len > kMaxStartupLength) {
    f.kind = StartupFrame::Kind::error;
    f.error = "invalid startup packet length";
    return f;
  }
  if (input.size() < len) return f;
  f.kind = StartupFrame::Kind::packet;
  f.packet = input.substr(0, len);
  f.consumed = len;
  return f;
}

}  // namespace pgcohere::protocol
