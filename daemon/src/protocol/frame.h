// Incremental framing of the PostgreSQL v3 protocol: finds message boundaries in a byte
// stream (typed messages, and the untyped startup-phase packets), enforces a maximum
// packet size, and lets long DataRow/CopyData messages stream through in pieces instead
// of being buffered whole. Pure: it looks at bytes the caller owns and says how many it used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgcohere::protocol {

// Limits of the v3 protocol that hold no matter what max_packet_size is configured.
inline constexpr uint32_t kMinTypedLength = 4;           // the length word counts itself
inline constexpr uint32_t kMaxStartupLength = 10000;     // PostgreSQL's own MAX_STARTUP_PACKET_LENGTH
inline constexpr uint32_t kDefaultMaxPacketSize = 2147483647u;

struct Frame {
  enum class Kind {
    need_more,    // no complete unit yet; read more and call again
    message,      // a whole message: type + body (consumed = 5 + body size)
    passthrough,  // bytes of a long streamable message; forward them without looking
    error,        // the stream is malformed; close the connection (error says why)
  };
  Kind kind = Kind::need_more;
  char type = 0;
  std::string_view body;      // message: the body after the length word
  size_t consumed = 0;        // bytes of the input this unit covers
  bool first_piece = false;   // passthrough: the piece that starts the message (has the header)
  uint32_t length = 0;        // passthrough: the message's length word
  std::string error;
};

// One direction of one connection. Feed it the unconsumed bytes; drop frame.consumed bytes
// after acting on each result.
class FrameDecoder {
 public:
  enum class Side { frontend, backend };  // who sends the bytes
  // stream_threshold: messages longer than this that the pooler never inspects (CopyData
  // both ways, DataRow from the server) are returned in passthrough pieces. Other messages
  // must fit whole (up to max_packet_size).
  explicit FrameDecoder(Side side = Side::backend, uint32_t max_packet_size = kDefaultMaxPacketSize,
                        uint32_t stream_threshold = 64 * 1024)
      : side_(side), max_packet_size_(max_packet_size), stream_threshold_(stream_threshold) {}

  Frame next(std::string_view input);

  // True while in the middle of a streamed message.
  bool streaming() const { return remaining_ != 0; }
  void set_max_packet_size(uint32_t n) { max_packet_size_ = n; }

 private:
  Side side_;
  uint32_t max_packet_size_;
  uint32_t stream_threshold_;
  uint64_t remaining_ = 0;  // bytes left of a message being streamed
};

// The first packet of a connection has no type byte: length + code + payload.
struct StartupFrame {
  enum class Kind { need_more, packet, error };
  Kind kind = Kind::need_more;
  std::string_view packet;  // whole packet including the length word
  size_t consumed = 0;
  std::string error;
};
StartupFrame next_startup_frame(std::string_view input);

}  // namespace pgcohere::protocol
