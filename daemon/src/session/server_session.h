// The protocol state of one server connection, driven by what the pooler sends to it and
// what it answers: request batches in flight (each ends with ReadyForQuery), responses to
// drop because the pooler injected the request, transaction status, parameters and
// prepared statements. Pure: the net layer feeds it messages and obeys its verdicts.
#pragma once

#include <cstdint>
#include <deque>
#include <string_view>
#include <vector>

#include "session/params.h"
#include "session/prepared.h"

namespace pgcohere::session {

class ServerSession {
 public:
  explicit ServerSession(size_t max_prepared = 200) : statements_(max_prepared) {}

  // ---- requests (pooler -> server), in the order they are written ----
  // A client's message of `type`; Sync, Query and FunctionCall end a batch, COPY data
  // messages belong to the batch already running.
  void sent(char type);
  // An injected request whose ParseComplete / CloseComplete must not reach the client.
  void injected_parse() { open().swallow_parse++; }
  void injected_close() { open().swallow_close++; }
  // A statement prepared in the current batch (forgotten if the batch fails).
  void prepared_in_batch(uint64_t id, const std::string& server_name);
  // A query of the pooler's own (SET for parameters, reset query): its whole answer is dropped.
  void sent_internal_query();
  // A batch of Parse/Describe/Close/Flush only, still open (no Sync yet), with no error so
  // far, outside any transaction: ending it with a Sync changes nothing the client can see
  // (asyncpg's first run of a statement, before its Bind/Execute/Sync).
  bool only_prepares_open() const;
  // The pooler's Sync ending that batch: its ReadyForQuery is dropped.
  void sent_closing_sync();

  // ---- responses (server -> pooler) ----
  struct Verdict {
    bool forward = true;        // pass the message on to the client
    bool batch_done = false;    // a ReadyForQuery ended a batch
    bool statements_reset = false;  // DISCARD ALL / DEALLOCATE ALL completed
  };
  Verdict on_message(char type, std::string_view body);

  // No request in flight and not inside a transaction: the connection can serve anyone.
  bool idle() const { return batches_.empty() && tx_status_ == 'I'; }
  bool requests_in_flight() const { return !batches_.empty(); }
  char tx_status() const { return tx_status_; }
  bool failed() const { return protocol_error_; }

  ParamMap& params() { return params_; }
  const ParamMap& params() const { return params_; }
  ServerStatements& statements() { return statements_; }

 private:
  struct Batch {
    int swallow_parse = 0;
    int swallow_close = 0;
    bool internal = false;
    bool closed = false;  // its Sync/Query was sent; only ReadyForQuery remains to come
    bool executes = false;       // a Bind or Execute was sent in it
    bool failed = false;         // an ErrorResponse came
    bool swallow_ready = false;  // the pooler's Sync closed it (sent_closing_sync)
    std::vector<std::pair<uint64_t, std::string>> prepared;
  };
  Batch& open();

  std::deque<Batch> batches_;
  char tx_status_ = 'I';
  bool protocol_error_ = false;
  ParamMap params_;
  ServerStatements statements_;
};

}  // namespace pgcohere::session
