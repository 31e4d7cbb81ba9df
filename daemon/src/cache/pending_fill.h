// A miss this client leads: the plan, the versions its lookup returned, and the capture
// of the server's reply. Whatever happens to the client or the server connection, the
// fill ends exactly once (stored, refused, or abandoned), so followers never wait longer
// than their bound.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cache/reply_capture.h"
#include "cache/service.h"

namespace pgcohere::cache {

class PendingFill {
 public:
  PendingFill(CacheService& service, std::string database, Plan plan, std::vector<std::string> versions,
              std::size_t max_bytes)
      : service_(service.weak_from_this()),
        database_(std::move(database)),
        plan_(std::move(plan)),
        versions_(std::move(versions)),
        capture_(max_bytes) {}
  PendingFill(const PendingFill&) = delete;
  PendingFill& operator=(const PendingFill&) = delete;
  ~PendingFill() { end(false); }

  // One forwarded message of the reply; true once the capture is over (then call end()).
  bool add(char type, std::string_view message) {
    capture_.add(type, message);
    return capture_.done();
  }
  bool add_fragment() {
    capture_.add_fragment();
    return true;
  }
  // The request is being written to the server (the first time only counts).
  void dispatched() {
    if (dispatched_) return;
    auto service = service_.lock();
    if (!service) return;
    dispatched_ = true;
    service->dispatched(database_, plan_);
  }
  // Hands a complete capture to the service (stored unless a tag moved); anything else
  // releases the followers empty-handed.
  void end(bool use_capture = true) {
    if (ended_) return;
    ended_ = true;
    auto service = service_.lock();
    if (!service) return;
    std::optional<std::string> reply;
    if (use_capture && capture_.state() == ReplyCapture::State::complete) reply = capture_.take();
    service->finish(database_, plan_, std::move(versions_), std::move(reply), looked_up_);
  }

 private:
  std::weak_ptr<CacheService> service_;  // expired: the service is gone, the fill ends quietly
  std::string database_;
  Plan plan_;
  std::vector<std::string> versions_;
  ReplyCapture capture_;
  std::chrono::steady_clock::time_point looked_up_ = std::chrono::steady_clock::now();
  bool ended_ = false;
  bool dispatched_ = false;
};

}  // namespace pgcohere::cache
