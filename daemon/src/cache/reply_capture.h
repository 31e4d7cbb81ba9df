// Collects, while the pooler forwards them, the server's messages that answer one cached
// request, and decides whether they may be stored: only a clean, complete result
// (ParseComplete/BindComplete, RowDescription or NoData, DataRows, CommandComplete) that
// ended in ReadyForQuery 'I' and fits max_entry_bytes. Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pgcohere::cache {

class ReplyCapture {
 public:
  explicit ReplyCapture(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  enum class State { collecting, complete, refused };
  // One whole forwarded message (type byte, length and body). After the first
  // ReadyForQuery nothing more is taken (later messages answer later requests).
  void add(char type, std::string_view message);
  // Part of a message streamed in pieces (a DataRow over the pooler's buffer): too big.
  void add_fragment() { refuse("a row too large to hold"); }
  State state() const { return state_; }
  bool done() const { return state_ != State::collecting; }
  // What a hit replays before its ReadyForQuery.
  const std::string& bytes() const { return bytes_; }
  std::string take() { return std::move(bytes_); }
  const char* refusal() const { return refusal_; }

 private:
  void refuse(const char* why);

  std::size_t max_bytes_;
  State state_ = State::collecting;
  std::string bytes_;
  bool completed_command_ = false;
  const char* refusal_ = "";
};

}  // namespace pgcohere::cache
