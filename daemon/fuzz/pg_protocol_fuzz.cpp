// libFuzzer target for the PostgreSQL wire codec, both sides: the first byte picks the
// direction and the limits, the rest is a byte stream fed in random-sized reads (its first
// byte also as a server's answer to an SSLRequest).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cache/reply_capture.h"
#include "cache/request.h"
#include "cache/session_switch.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "protocol/ssl_negotiation.h"
#include "session/client_session.h"
#include "session/server_session.h"

using namespace pgcohere::protocol;

namespace {
void inspect(char type, std::string_view body, bool backend) {
  if (backend) {
    switch (type) {
      case 'R': (void)parse_authentication(body); break;
      case 'S': (void)parse_parameter_status(body); break;
      case 'K': (void)parse_backend_key_data(body); break;
      case 'Z': (void)parse_ready_for_query(body); break;
      case 'E':
      case 'N': (void)parse_error_fields(body); break;
      default: break;
    }
  } else {
    switch (type) {
      case 'Q': (void)parse_query(body); break;
      case 'P': {
        auto p = parse_parse(body);
        if (p) {
          std::string out;
          encode::parse(out, p->name, p->query, p->param_types);
        }
        break;
      }
      case 'B': {
        auto b = parse_bind_head(body);
        if (b) {
          std::string out;
          encode::bind(out, b->portal, "PGC_1", b->rest);
        }
        break;
      }
      case 'D':
      case 'C': (void)parse_target(body); break;
      default: break;
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint8_t mode = data[0];
  uint8_t chunk = static_cast<uint8_t>(data[1] | 1);
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  bool backend = mode & 1;
  std::string_view in = stream;
  if (backend && !in.empty()) {
    // A server's one-byte answer to the pooler's SSLRequest, under every server_tls_sslmode:
    // only 'S' leads to a handshake, and no mode from require up goes on in plain text.
    for (int m = 0; m <= static_cast<int>(SslMode::verify_full); ++m) {
      auto step = on_ssl_answer(static_cast<SslMode>(m), in[0]);
      if (step.kind == ServerTlsStep::Kind::handshake && in[0] != 'S') __builtin_trap();
      if (step.kind == ServerTlsStep::Kind::plain && static_cast<SslMode>(m) >= SslMode::require) __builtin_trap();
    }
  }
  if (mode & 2) {
    auto sf = next_startup_frame(in);
    if (sf.kind != StartupFrame::Kind::packet) return 0;
    auto sp = parse_startup_packet(sf.packet);
    if (sp) (void)sp->find("user");
    in.remove_prefix(sf.consumed);
  }
  // The session layer sees every whole message too: client messages are translated for a
  // server connection (prepared statements rewritten), server messages update its state.
  // The query cache reads the same bytes: which client batches it may answer, and what of
  // a server reply it may store.
  if (backend) {
    pgcohere::cache::ReplyCapture capture(4096);
    FrameDecoder whole(FrameDecoder::Side::backend);
    std::string_view rest = in;
    while (!capture.done()) {
      auto f = whole.next(rest);
      if (f.kind != Frame::Kind::message) break;
      capture.add(f.type, rest.substr(0, f.consumed));
      rest.remove_prefix(f.consumed);
    }
    if (capture.state() == pgcohere::cache::ReplyCapture::State::complete && capture.bytes().size() > 4096)
      __builtin_trap();
  } else {
    auto named = [](std::string_view name) -> std::optional<pgcohere::cache::NamedStatement> {
      if (name.empty() || name[0] != 's') return std::nullopt;
      return pgcohere::cache::NamedStatement{"SELECT 1", std::string_view("\0\0", 2)};
    };
    if (auto r = pgcohere::cache::recognize(in, named); r && (r->consumed == 0 || r->consumed > in.size()))
      __builtin_trap();
    (void)pgcohere::cache::session_switch(in);
  }
  pgcohere::session::StatementRegistry registry;
  pgcohere::session::ClientSession client;
  pgcohere::session::ServerSession server(4);
  std::string translated;
  FrameDecoder dec(backend ? FrameDecoder::Side::backend : FrameDecoder::Side::frontend,
                   mode & 4 ? 4096 : kDefaultMaxPacketSize, mode & 8 ? 16 : 64 * 1024);
  // Feed the stream in pieces of `chunk` bytes, as reads from a socket would arrive.
  std::string buffer;
  size_t fed = 0;
  while (true) {
    auto f = dec.next(buffer);
    if (f.kind == Frame::Kind::error) return 0;
    if (f.kind == Frame::Kind::need_more) {
      if (fed >= in.size()) return 0;
      size_t n = std::min<size_t>(chunk, in.size() - fed);
      buffer.append(in.substr(fed, n));
      fed += n;
      continue;
    }
    if (f.consumed == 0 || f.consumed > buffer.size()) __builtin_trap();
    if (f.kind == Frame::Kind::message) {
      inspect(f.type, f.body, backend);
      if (backend) {
        (void)server.on_message(f.type, f.body);
      } else {
        std::string_view frame(buffer.data(), f.consumed);
        (void)client.translate(f.type, frame, f.body, server, registry, true, translated);
        if (translated.size() > (1u << 20)) translated.clear();
      }
    }
    buffer.erase(0, f.consumed);
  }
}
