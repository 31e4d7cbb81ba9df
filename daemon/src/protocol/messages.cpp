// Parsers and encoders of PostgreSQL v3 messages (see messages.h).
#include "protocol/messages.h"

#include "protocol/wire.h"

namespace pgcohere::protocol {

const std::string* StartupPacket::find(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return &v;
  return nullptr;
}

Result<StartupPacket> parse_startup_packet(std::string_view packet) {
  using R = Result<StartupPacket>;
  Reader r(packet);
  auto len = r.i32();
  auto code = r.i32();
  if (!len || !code || static_cast<size_t>(*len) != packet.size()) return R::fail("invalid startup packet");
  StartupPacket p;
  p.version = *code;
  switch (*code) {
    case kSslRequestCode:
      p.kind = StartupPacket::Kind::ssl_request;
      return r.at_end() ? R(std::move(p)) : R::fail("invalid SSLRequest");
    case kGssEncRequestCode:
      p.kind = StartupPacket::Kind::gssenc_request;
      return r.at_end() ? R(std::move(p)) : R::fail("invalid GSSENCRequest");
    case kCancelRequestCode: {
      p.kind = StartupPacket::Kind::cancel_request;
      auto pid = r.i32();
      auto key = r.i32();
      if (!pid || !key || !r.at_end()) return R::fail("invalid CancelRequest");
      p.cancel_pid = *pid;
      p.cancel_key = *key;
      return p;
    }
    default:
      break;
  }
  if ((*code >> 16) != 3) return R::fail("unsupported frontend protocol " + std::to_string(*code >> 16) + "." +
                                        std::to_string(*code & 0xffff));
  for (;;) {
    auto name = r.cstr();
    if (!name) return R::fail("invalid startup packet: unterminated parameter list");
    if (name->empty()) break;
    auto value = r.cstr();
    if (!value) return R::fail("invalid startup packet: parameter without value");
    p.params.emplace_back(std::string(*name), std::string(*value));
  }
  if (!r.at_end()) return R::fail("invalid startup packet: bytes after parameter list");
  return p;
}

Result<Authentication> parse_authentication(std::string_view body) {
  Reader r(body);
  auto code = r.i32();
  if (!code) return Result<Authentication>::fail("invalid Authentication message");
  return Authentication{*code, r.rest()};
}

Result<ParameterStatus> parse_parameter_status(std::string_view body) {
  Reader r(body);
  auto name = r.cstr();
  auto value = r.cstr();
  if (!name || !value || !r.at_end()) return Result<ParameterStatus>::fail("invalid ParameterStatus");
  return ParameterStatus{*name, *value};
}

Result<NotificationResponse> parse_notification_response(std::string_view body) {
  Reader r(body);
  auto pid = r.i32();
  auto channel = r.cstr();
  auto payload = r.cstr();
  if (!pid || !channel || !payload || !r.at_end()) return Result<NotificationResponse>::fail("invalid NotificationResponse");
  return NotificationResponse{*pid, *channel, *payload};
}

Result<BackendKeyData> parse_backend_key_data(std::string_view body) {
  Reader r(body);
  auto pid = r.i32();
  auto key = r.i32();
  if (!pid || !key || !r.at_end()) return Result<BackendKeyData>::fail("invalid BackendKeyData");
  return BackendKeyData{*pid, *key};
}

Result<char> parse_ready_for_query(std::string_view body) {
  if (body.size() != 1 || (body[0] != 'I' && body[0] != 'T' && body[0] != 'E'))
    return Result<char>::fail("invalid ReadyForQuery");
  return body[0];
}

std::string_view ErrorFields::get(char code) const {
  for (const auto& [c, v] : fields)
    if (c == code) return v;
  return {};
}

Result<ErrorFields> parse_error_fields(std::string_view body) {
  Reader r(body);
  ErrorFields e;
  for (;;) {
    auto code = r.u8();
    if (!code) return Result<ErrorFields>::fail("invalid error fields: no terminator");
    if (*code == 0) break;
    auto v = r.cstr();
    if (!v) return Result<ErrorFields>::fail("invalid error fields: unterminated value");
    e.fields.emplace_back(static_cast<char>(*code), *v);
  }
  if (!r.at_end()) return Result<ErrorFields>::fail("invalid error fields: trailing bytes");
  return e;
}

Result<std::string_view> parse_query(std::string_view body) {
  Reader r(body);
  auto q = r.cstr();
  if (!q || !r.at_end()) return Result<std::string_view>::fail("invalid Query message");
  return *q;
}

Result<ParseMessage> parse_parse(std::string_view body) {
  Reader r(body);
  auto name = r.cstr();
  auto query = r.cstr();
  if (!name || !query) return Result<ParseMessage>::fail("invalid Parse message");
  auto types = r.rest();
  Reader t(types);
  auto n = t.i16();
  if (!n || *n < 0 || types.size() != 2 + size_t(*n) * 4) return Result<ParseMessage>::fail("invalid Parse message");
  return ParseMessage{*name, *query, types};
}

Result<BindHead> parse_bind_head(std::string_view body) {
  Reader r(body);
  auto portal = r.cstr();
  auto stmt = r.cstr();
  if (!portal || !stmt) return Result<BindHead>::fail("invalid Bind message");
  return BindHead{*portal, *stmt, r.rest()};
}

Result<Bind> parse_bind(std::string_view body) {
  auto bad = [] { return Result<Bind>::fail("invalid Bind message"); };
  Reader r(body);
  Bind b;
  auto portal = r.cstr();
  auto stmt = r.cstr();
  auto nformats = r.i16();
  if (!portal || !stmt || !nformats || *nformats < 0) return bad();
  b.portal = *portal;
  b.statement = *stmt;
  for (int i = 0; i < *nformats; ++i) {
    auto f = r.i16();
    if (!f || (*f != 0 && *f != 1)) return bad();
    b.param_formats.push_back(*f);
  }
  auto nvalues = r.i16();
  if (!nvalues || *nvalues < 0) return bad();
  if (b.param_formats.size() > 1 && b.param_formats.size() != static_cast<size_t>(*nvalues)) return bad();
  for (int i = 0; i < *nvalues; ++i) {
    auto len = r.i32();
    if (!len || *len < -1) return bad();
    if (*len == -1) {
      b.values.emplace_back(std::nullopt);
      continue;
    }
    auto v = r.bytes(static_cast<size_t>(*len));
    if (!v) return bad();
    b.values.emplace_back(*v);
  }
  auto nresults = r.i16();
  if (!nresults || *nresults < 0) return bad();
  for (int i = 0; i < *nresults; ++i) {
    auto f = r.i16();
    if (!f || (*f != 0 && *f != 1)) return bad();
    b.result_formats.push_back(*f);
  }
  if (!r.at_end()) return bad();
  return b;
}

Result<Execute> parse_execute(std::string_view body) {
  Reader r(body);
  auto portal = r.cstr();
  auto max_rows = r.i32();
  if (!portal || !max_rows || !r.at_end()) return Result<Execute>::fail("invalid Execute message");
  return Execute{*portal, *max_rows};
}

Result<Target> parse_target(std::string_view body) {
  Reader r(body);
  auto kind = r.u8();
  auto name = r.cstr();
  if (!kind || (*kind != 'S' && *kind != 'P') || !name || !r.at_end())
    return Result<Target>::fail("invalid Describe/Close message");
  return Target{static_cast<char>(*kind), *name};
}

namespace encode {
namespace {
void error_like(std::string& out, char type, std::string_view severity, std::string_view sqlstate,
                std::string_view message) {
  Writer w(out);
  w.begin(type).u8('S').cstr(severity).u8('V').cstr(severity).u8('C').cstr(sqlstate).u8('M').cstr(message).u8(0);
  w.end();
}
}  // namespace

void error_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                    std::string_view message) {
  error_like(out, 'E', severity, sqlstate, message);
}
void notice_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                     std::string_view message) {
  error_like(out, 'N', severity, sqlstate, message);
}
void authentication(std::string& out, int32_t code, std::string_view data) {
  Writer w(out);
  w.begin('R').i32(code).bytes(data);
  w.end();
}
void parameter_status(std::string& out, std::string_view name, std::string_view value) {
  Writer w(out);
  w.begin('S').cstr(name).cstr(value);
  w.end();
}
void backend_key_data(std::string& out, int32_t pid, int32_t key) {
  Writer w(out);
  w.begin('K').i32(pid).i32(key);
  w.end();
}
void ready_for_query(std::string& out, char status) {
  Writer w(out);
  w.begin('Z').u8(static_cast<uint8_t>(status));
  w.end();
}
void command_complete(std::string& out, std::string_view tag) {
  Writer w(out);
  w.begin('C').cstr(tag);
  w.end();
}
void notification_response(std::string& out, int32_t pid, std::string_view channel, std::string_view payload) {
  Writer w(out);
  w.begin('A').i32(pid).cstr(channel).cstr(payload);
  w.end();
}
void empty_query_response(std::string& out) {
  Writer w(out);
  w.begin('I');
  w.end();
}
void parse_complete(std::string& out) {
  Writer w(out);
  w.begin('1');
  w.end();
}
void bind_complete(std::string& out) {
  Writer w(out);
  w.begin('2');
  w.end();
}
void no_data(std::string& out) {
  Writer w(out);
  w.begin('n');
  w.end();
}
void parameter_description(std::string& out, const std::vector<int32_t>& type_oids) {
  Writer w(out);
  w.begin('t').i16(static_cast<int16_t>(type_oids.size()));
  for (int32_t oid : type_oids) w.i32(oid);
  w.end();
}
void close_complete(std::string& out) {
  Writer w(out);
  w.begin('3');
  w.end();
}
void row_description(std::string& out, const std::vector<Field>& columns) {
  Writer w(out);
  w.begin('T').i16(static_cast<int16_t>(columns.size()));
  for (const auto& c : columns) w.cstr(c.name).i32(0).i16(0).i32(c.type_oid).i16(c.type_size).i32(-1).i16(0);
  w.end();
}
void notice(std::string& out, std::string_view message, std::string_view detail) {
  Writer w(out);
  w.begin('N').u8('S').cstr("NOTICE").u8('V').cstr("NOTICE").u8('C').cstr("00000").u8('M').cstr(message);
  if (!detail.empty()) w.u8('D').cstr(detail);
  w.u8(0);
  w.end();
}
void data_row(std::string& out, const std::vector<std::optional<std::string>>& values) {
  Writer w(out);
  w.begin('D').i16(static_cast<int16_t>(values.size()));
  for (const auto& v : values) {
    if (!v) {
      w.i32(-1);
    } else {
      w.i32(static_cast<int32_t>(v->size())).bytes(*v);
    }
  }
  w.end();
}
void startup_message(std::string& out, const Params& params) {
  Writer w(out);
  w.begin_untyped().i32(kProtocolV3);
  for (const auto& [k, v] : params) w.cstr(k).cstr(v);
  w.u8(0);
  w.end();
}
void ssl_request(std::string& out) {
  Writer w(out);
  w.begin_untyped().i32(kSslRequestCode);
  w.end();
}
void cancel_request(std::string& out, int32_t pid, int32_t key) {
  Writer w(out);
  w.begin_untyped().i32(kCancelRequestCode).i32(pid).i32(key);
  w.end();
}
void password_message(std::string& out, std::string_view data, bool nul_terminate) {
  Writer w(out);
  w.begin('p').bytes(data);
  if (nul_terminate) w.u8(0);
  w.end();
}
void query(std::string& out, std::string_view sql) {
  Writer w(out);
  w.begin('Q').cstr(sql);
  w.end();
}
void parse(std::string& out, std::string_view name, std::string_view query, std::string_view param_types) {
  Writer w(out);
  w.begin('P').cstr(name).cstr(query).bytes(param_types.empty() ? std::string_view("\0\0", 2) : param_types);
  w.end();
}
void bind(std::string& out, std::string_view portal, std::string_view statement, std::string_view rest) {
  Writer w(out);
  w.begin('B').cstr(portal).cstr(statement).bytes(rest);
  w.end();
}
void describe(std::string& out, char kind, std::string_view name) {
  Writer w(out);
  w.begin('D').u8(static_cast<uint8_t>(kind)).cstr(name);
  w.end();
}
void close(std::string& out, char kind, std::string_view name) {
  Writer w(out);
  w.begin('C').u8(static_cast<uint8_t>(kind)).cstr(name);
  w.end();
}
void sync(std::string& out) {
  Writer w(out);
  w.begin('S');
  w.end();
}
void flush(std::string& out) {
  Writer w(out);
  w.begin('H');
  w.end();
}
void terminate(std::string& out) {
  Writer w(out);
  w.begin('X');
  w.end();
}
}  // namespace encode

std::string quote_literal(std::string_view value) {
  std::string s;
  s.reserve(value.size() + 3);
  // E'' reads the same whether standard_conforming_strings is on or off.
  if (value.find('\\') != std::string_view::npos) s.push_back('E');
  s.push_back('\'');
  for (char c : value) {
    if (c == '\'' || c == '\\') s.push_back(c);
    s.push_back(c);
  }
  s.push_back('\'');
  return s;
}

}  // namespace pgcohere::protocol
