// The single-server backend.
#include "redis/backend.h"

namespace pgcohere::redis {

SingleBackend::SingleBackend(boost::asio::io_context& io, const std::string& host, int port, int db,
                             Timeouts timeouts)
    : key_conn_(std::make_shared<AsyncClient>(io, host, port, db, "redis")),
      scan_conn_(std::make_shared<AsyncClient>(io, host, port, db, "redis-scan")) {
  key_conn_->set_timeouts(timeouts.connect, timeouts.command);
  scan_conn_->set_timeouts(timeouts.connect, timeouts.command);
  auto notify = [this](bool up) {
    if (up && ready_handler_) ready_handler_();
  };
  key_conn_->on_state(notify);
  scan_conn_->on_state(notify);
}

void SingleBackend::start() {
  key_conn_->start();
  scan_conn_->start();
}

void SingleBackend::stop() {
  key_conn_->stop();
  scan_conn_->stop();
}

bool SingleBackend::ready() const { return key_conn_->connected() && scan_conn_->connected(); }
void SingleBackend::on_ready(std::function<void()> handler) { ready_handler_ = std::move(handler); }

void SingleBackend::unlink(std::vector<std::string> keys, bool bulk, Callback done) {
  keys.insert(keys.begin(), "UNLINK");
  (bulk ? scan_conn_ : key_conn_)->command(std::move(keys), std::move(done));
}

void SingleBackend::keyed(std::vector<std::string> argv, std::size_t, Callback done) {
  key_conn_->command(std::move(argv), std::move(done));
}

void SingleBackend::scan(const std::string&, std::vector<std::string> argv, Callback done) {
  scan_conn_->command(std::move(argv), std::move(done));
}

void SingleBackend::cork() {
  key_conn_->cork();
  scan_conn_->cork();
}

void SingleBackend::uncork() {
  key_conn_->uncork();
  scan_conn_->uncork();
}

std::string SingleBackend::describe() const {
  return key_conn_->host() + ":" + std::to_string(key_conn_->port());
}

}  // namespace pgcohere::redis
