// Typed PostgreSQL v3 messages: parsers for the bodies the pooler must understand
// (frontend and backend), and encoders for the messages it writes itself. Pure codecs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcohere::protocol {

inline constexpr int32_t kProtocolV3 = 196608;          // 3.0
inline constexpr int32_t kSslRequestCode = 80877103;
inline constexpr int32_t kGssEncRequestCode = 80877104;
inline constexpr int32_t kCancelRequestCode = 80877102;

// A parse result: a value, or the reason the bytes are not a valid message.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  static Result fail(std::string why) {
    Result r;
    r.error_ = std::move(why);
    return r;
  }
  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  const T& value() const { return *value_; }
  T& value() { return *value_; }
  const T* operator->() const { return &*value_; }
  T* operator->() { return &*value_; }
  const std::string& error() const { return error_; }

 private:
  Result() = default;
  std::optional<T> value_;
  std::string error_;
};

using Params = std::vector<std::pair<std::string, std::string>>;

// ---- startup phase (untyped packets) ----
struct StartupPacket {
  enum class Kind { startup, ssl_request, gssenc_request, cancel_request };
  Kind kind = Kind::startup;
  int32_t version = 0;
  Params params;  // startup: user, database, options, application_name, ...
  int32_t cancel_pid = 0;
  int32_t cancel_key = 0;
  const std::string* find(std::string_view name) const;
};
// packet: the whole packet including its length word (see next_startup_frame).
Result<StartupPacket> parse_startup_packet(std::string_view packet);

// ---- backend messages ----
struct Authentication {  // 'R'
  int32_t code = 0;      // 0 ok, 3 cleartext, 5 md5, 10 SASL, 11 SASL continue, 12 SASL final
  std::string_view data;
};
Result<Authentication> parse_authentication(std::string_view body);

struct ParameterStatus {  // 'S'
  std::string_view name, value;
};
Result<ParameterStatus> parse_parameter_status(std::string_view body);

struct BackendKeyData {  // 'K'
  int32_t pid = 0, key = 0;
};
Result<BackendKeyData> parse_backend_key_data(std::string_view body);

// 'Z': 'I' idle, 'T' in transaction, 'E' failed transaction.
Result<char> parse_ready_for_query(std::string_view body);

struct NotificationResponse {  // 'A'
  int32_t pid = 0;  // the notifying backend
  std::string_view channel, payload;
};
Result<NotificationResponse> parse_notification_response(std::string_view body);

struct ErrorFields {  // 'E' and 'N'
  std::vector<std::pair<char, std::string_view>> fields;
  std::string_view get(char code) const;
};
Result<ErrorFields> parse_error_fields(std::string_view body);

// ---- frontend messages ----
Result<std::string_view> parse_query(std::string_view body);  // 'Q'

struct ParseMessage {  // 'P'
  std::string_view name, query;
  std::string_view param_types;  // the raw count + OIDs that follow the query
};
Result<ParseMessage> parse_parse(std::string_view body);

struct BindHead {  // 'B': only the names; the rest is forwarded untouched
  std::string_view portal, statement;
  std::string_view rest;
};
Result<BindHead> parse_bind_head(std::string_view body);

// 'B' in full, for the query cache: every parameter and format.
struct Bind {
  std::string_view portal, statement;
  std::vector<int16_t> param_formats;  // as sent: none (all text), one (all), or one per value
  std::vector<std::optional<std::string_view>> values;  // nullopt: NULL
  std::vector<int16_t> result_formats;
  // The format of parameter i after PostgreSQL's rules (0 text, 1 binary).
  int16_t param_format(size_t i) const {
    if (param_formats.empty()) return 0;
    return param_formats.size() == 1 ? param_formats[0] : param_formats[i];
  }
};
Result<Bind> parse_bind(std::string_view body);

struct Execute {  // 'E'
  std::string_view portal;
  int32_t max_rows = 0;  // 0: all rows
};
Result<Execute> parse_execute(std::string_view body);

struct Target {  // 'D' Describe and 'C' Close: 'S' statement or 'P' portal
  char kind = 'S';
  std::string_view name;
};
Result<Target> parse_target(std::string_view body);

// ---- encoders (append one message to out) ----
namespace encode {
void error_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                    std::string_view message);
void notice_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                     std::string_view message);
void authentication(std::string& out, int32_t code, std::string_view data = {});
void parameter_status(std::string& out, std::string_view name, std::string_view value);
void backend_key_data(std::string& out, int32_t pid, int32_t key);
void ready_for_query(std::string& out, char status);
void command_complete(std::string& out, std::string_view tag);
void notification_response(std::string& out, int32_t pid, std::string_view channel, std::string_view payload);
void empty_query_response(std::string& out);
void parse_complete(std::string& out);
void bind_complete(std::string& out);
void no_data(std::string& out);
void parameter_description(std::string& out, const std::vector<int32_t>& type_oids);
void close_complete(std::string& out);
struct Field {  // one RowDescription column, text format
  std::string name;
  int32_t type_oid = 25;
  int16_t type_size = -1;
};
void row_description(std::string& out, const std::vector<Field>& columns);
void notice(std::string& out, std::string_view message, std::string_view detail = {});
void data_row(std::string& out, const std::vector<std::optional<std::string>>& values);

void startup_message(std::string& out, const Params& params);
void ssl_request(std::string& out);
void cancel_request(std::string& out, int32_t pid, int32_t key);
void password_message(std::string& out, std::string_view data, bool nul_terminate = true);
void query(std::string& out, std::string_view sql);
void parse(std::string& out, std::string_view name, std::string_view query, std::string_view param_types);
void bind(std::string& out, std::string_view portal, std::string_view statement, std::string_view rest);
void describe(std::string& out, char kind, std::string_view name);
void close(std::string& out, char kind, std::string_view name);
void sync(std::string& out);
void flush(std::string& out);
void terminate(std::string& out);
}  // namespace encode

// Quotes a value as an SQL string literal ('...' with doubled quotes).
std::string quote_literal(std::string_view value);

}  // namespace pgcohere::protocol
