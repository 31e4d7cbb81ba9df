// Reply capture (see reply_capture.h).
#include "cache/reply_capture.h"

namespace pgcohere::cache {

void ReplyCapture::refuse(const char* why) {
  if (state_ != State::collecting) return;
  state_ = State::refused;
  refusal_ = why;
  bytes_.clear();
  bytes_.shrink_to_fit();
}

void ReplyCapture::add(char type, std::string_view message) {
  if (state_ != State::collecting) return;
  switch (type) {
    case '1':  // ParseComplete
    case '2':  // BindComplete
    case 'T':  // RowDescription
    case 'n':  // NoData
    case 'D':  // DataRow
      if (completed_command_) return refuse("more than one result");
      break;
    case 'C':  // CommandComplete
      if (completed_command_) return refuse("more than one result");
      completed_command_ = true;
      break;
    case 'Z': {
      // ReadyForQuery: its status byte is the last of the message.
      char status = message.empty() ? '?' : message.back();
      if (!completed_command_) return refuse("no complete result");
      if (status != 'I') return refuse("not in an idle transaction state");
      state_ = State::complete;
      return;
    }
    case 'E':
      return refuse("an error");
    case 'N':
      return refuse("a notice");  // a replay would repeat it, or lose it: never store it
    case 'S':
      return refuse("a parameter change");
    case 'A':
      return refuse("a notification");
    default:
      return refuse("an unexpected message");
  }
  if (bytes_.size() + message.size() > max_bytes_) return refuse("max_entry_bytes");
  bytes_.append(message);
}

}  // namespace pgcohere::cache
