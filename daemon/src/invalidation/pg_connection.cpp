// libpq on Asio: the socket is waited on with a stream_descriptor that never owns it
// (libpq closes it in PQfinish).
#include "invalidation/pg_connection.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "util/log.h"

namespace pgcohere::invalidation {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

std::string quote_identifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

void PgConnection::close() {
  if (sd_) {
    boost::system::error_code ignored;
    sd_->cancel(ignored);
    sd_->release();
    sd_.reset();
  }
  timer_.cancel();
  if (conn_) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

namespace {
// libpq's messages span lines ("FATAL: ...\n\tThis probably means..."): one log line each.
std::string one_line(std::string m) {
  std::string out;
  for (char c : m) {
    if (c == '\n' || c == '\t' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

void log_notice(void*, const char* message) { PGC_LOG_INFO << "postgres: " << one_line(message); }
}  // namespace

std::string PgConnection::error_message() const {
  if (!conn_) return "no connection";
  return one_line(PQerrorMessage(conn_));
}

awaitable<bool> PgConnection::wait_socket(bool for_write) {
  int fd = PQsocket(conn_);
  if (fd < 0) co_return false;
  if (!sd_ || sd_->native_handle() != fd) {
    if (sd_) sd_->release();
    sd_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
    waited_for_write_ = false;
  }
  if (for_write) waited_for_write_ = true;
  boost::system::error_code ec;
  co_await sd_->async_wait(for_write ? asio::posix::stream_descriptor::wait_write
                                     : asio::posix::stream_descriptor::wait_read,
                           asio::redirect_error(use_awaitable, ec));
  co_return !ec;
}

awaitable<std::string> PgConnection::connect(const std::map<std::string, std::string>& params) {
  close();
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectStartParams(keys.data(), values.data(), 0);
  if (!conn_) co_return "out of memory";
  PQsetNoticeProcessor(conn_, &log_notice, nullptr);
  if (PQstatus(conn_) == CONNECTION_BAD) {
    std::string e = error_message();
    close();
    co_return e;
  }
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) {
      std::string e = error_message();
      close();
      co_return e.empty() ? "connection failed" : e;
    }
    if (!co_await wait_socket(st == PGRES_POLLING_WRITING)) {
      close();
      co_return "connect cancelled";
    }
    st = PQconnectPoll(conn_);
  }
  PQsetnonblocking(conn_, 1);
  PQsetNoticeProcessor(conn_, &log_notice, nullptr);
  co_return "";
}

awaitable<std::optional<std::vector<std::vector<std::string>>>> PgConnection::query(
    const std::string& sql, std::string* error, std::string* sqlstate) {
  auto fail = [&](std::string e) {
    if (error) *error = std::move(e);
    return std::nullopt;
  };
  if (!conn_) co_return fail("not connected");
  if (!PQsendQuery(conn_, sql.c_str())) co_return fail(error_message());
  for (;;) {
    int f = PQflush(conn_);
    if (f < 0) co_return fail(error_message());
    if (f == 0) break;
    if (!co_await wait_socket(true)) co_return fail("cancelled");
  }
  std::optional<std::vector<std::vector<std::string>>> rows;
  std::string err;
  for (;;) {
    while (PQisBusy(conn_)) {
      if (!co_await wait_socket(false)) co_return fail("cancelled");
      if (!PQconsumeInput(conn_)) co_return fail(error_message());
    }
    PgResult r(PQgetResult(conn_));
    if (!r) break;
    auto status = PQresultStatus(r.get());
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      rows.emplace();
      for (int i = 0; i < PQntuples(r.get()); ++i) {
        std::vector<std::string> row;
        for (int j = 0; j < PQnfields(r.get()); ++j) row.emplace_back(PQgetvalue(r.get(), i, j));
        rows->push_back(std::move(row));
      }
    } else {
      err = one_line(PQresultErrorMessage(r.get()));
      if (sqlstate) {
        const char* s = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
        *sqlstate = s ? s : "";
      }
    }
  }
  // Keep notifications that came with the reply for the next wait().
  while (PGnotify* n = PQnotifies(conn_)) {
    buffered_.push_back({n->relname, n->extra, n->be_pid});
    PQfreemem(n);
  }
  if (!err.empty()) co_return fail(err);
  if (!rows) co_return fail("no result");
  co_return rows;
}

void PgConnection::drain(const NotifyHandler& handler, const std::function<void()>& batch_done) {
  bool any = false;
  try {
    if (!buffered_.empty()) {
      any = true;
      auto batch = std::move(buffered_);
      buffered_.clear();
      for (auto& n : batch) handler(std::move(n));
    }
    // Straight from libpq to the handler (the handler may close the connection: then conn_
    // is null).
    while (PGnotify* n = conn_ ? PQnotifies(conn_) : nullptr) {
      Notification note{n->relname, n->extra, n->be_pid};
      PQfreemem(n);
      any = true;
      handler(std::move(note));
    }
  } catch (...) {
    if (any && batch_done) batch_done();  // whatever the handler began is not left half done
    throw;
  }
  if (any && batch_done) batch_done();
}

void PgConnection::wake() {
  woken_ = true;
  if (waiting_ && sd_) {
    boost::system::error_code ignored;
    sd_->cancel(ignored);
  }
}

awaitable<bool> PgConnection::wait(std::optional<std::chrono::steady_clock::time_point> deadline,
                                   const NotifyHandler& handler, const std::function<void()>& batch_done) {
  if (!conn_) co_return false;
  drain(handler, batch_done);  // a notification can already sit in libpq's buffer
  if (woken_) {
    woken_ = false;
    co_return true;
  }
  if (deadline) {
    timer_.expires_at(*deadline);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec && waiting_ && sd_) {
        boost::system::error_code ignored;
        sd_->cancel(ignored);
      }
    });
  }
  if (waited_for_write_ && sd_) {  // no wait is pending on it here
    sd_->release();
    sd_.reset();
  }
  waiting_ = true;
  bool readable = co_await wait_socket(false);
  waiting_ = false;
  timer_.cancel();
  woken_ = false;
  if (!conn_) co_return false;
  if (readable && !PQconsumeInput(conn_)) co_return false;
  drain(handler, batch_done);
  co_return true;
}

}  // namespace pgcohere::invalidation
