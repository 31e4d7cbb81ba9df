// Request/response bookkeeping of one server connection (see server_session.h).
#include "session/server_session.h"

#include "protocol/messages.h"

namespace pgcohere::session {

ServerSession::Batch& ServerSession::open() {
  if (batches_.empty() || batches_.back().closed) batches_.emplace_back();
  return batches_.back();
}

void ServerSession::sent(char type) {
  switch (type) {
    case 'd':  // CopyData, CopyDone, CopyFail: part of the COPY the running batch started
    case 'c':
    case 'f':
      return;
    case 'S':  // Sync, Query, FunctionCall: one ReadyForQuery each
    case 'Q':
    case 'F':
      open().closed = true;
      return;
    case 'B':
    case 'E':
      open().executes = true;
      return;
    default:
      open();
  }
}

bool ServerSession::only_prepares_open() const {
  if (batches_.size() != 1 || tx_status_ != 'I') return false;
  const Batch& b = batches_.front();
  return !b.closed && !b.executes && !b.failed && !b.internal;
}

void ServerSession::sent_closing_sync() {
  Batch& b = open();
  b.closed = true;
  b.swallow_ready = true;
}

void ServerSession::prepared_in_batch(uint64_t id, const std::string& server_name) {
  open().prepared.emplace_back(id, server_name);
}

void ServerSession::sent_internal_query() {
  Batch b;
  b.internal = true;
  b.closed = true;
  batches_.push_back(std::move(b));
}

ServerSession::Verdict ServerSession::on_message(char type, std::string_view body) {
  Verdict v;
  Batch* front = batches_.empty() ? nullptr : &batches_.front();
  if (front && front->internal) v.forward = false;
  switch (type) {
    case '1':
      if (front && front->swallow_parse > 0) {
        front->swallow_parse--;
        v.forward = false;
      }
      break;
    case '3':
      if (front && front->swallow_close > 0) {
        front->swallow_close--;
        v.forward = false;
      }
      break;
    case 'E':
      // The server skips the rest of the batch up to Sync: injected requests after the
      // failure get no answer, and statements it may not have prepared are in doubt.
      if (front) {
        front->failed = true;
        front->swallow_parse = front->swallow_close = 0;
        for (auto& [id, name] : front->prepared) statements_.forget_uncertain(id, name);
        front->prepared.clear();
      }
      break;
    case 'S': {
      auto ps = protocol::parse_parameter_status(body);
      if (ps) params_.set(ps->name, ps->value);
      else protocol_error_ = true;
      break;
    }
    case 'C':
      if (body == std::string_view("DISCARD ALL\0", 12) || body == std::string_view("DEALLOCATE ALL\0", 15)) {
        statements_.clear();
        v.statements_reset = true;
      }
      break;
    case 'Z': {
      auto st = protocol::parse_ready_for_query(body);
      if (!st) {
        protocol_error_ = true;
        break;
      }
      tx_status_ = st.value();
      if (front && front->swallow_ready) v.forward = false;
      if (front) {
        batches_.pop_front();
        v.batch_done = true;
      }
      break;
    }
    default:
      break;
  }
  return v;
}

}  // namespace pgcohere::session
