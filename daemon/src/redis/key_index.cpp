// Keyspace-notification-driven index of key names.
#include "redis/key_index.h"

#include <unistd.h>

#include "util/log.h"

namespace pgcohere::redis {

KeyIndex::KeyIndex(boost::asio::io_context& io, const std::string& host, int port, int db,
                   std::chrono::milliseconds command_timeout)
    : db_(db),
      event_prefix_("__keyevent@" + std::to_string(db) + "__:"),
      barrier_channel_(event_prefix_ + "pgcohered-barrier-" + std::to_string(getpid())),
      sub_(std::make_shared<AsyncClient>(io, host, port, 0, "redis-index-sub")),
      cmd_(std::make_shared<AsyncClient>(io, host, port, db, "redis-index")) {
  cmd_->set_timeouts(command_timeout, command_timeout);
  sub_->set_timeouts(command_timeout, std::chrono::milliseconds(0));
  sub_->on_state([this](bool up) { on_subscriber_state(up); });
  cmd_->on_state([this](bool up) {
    if (up && state_ == State::down && sub_->connected()) on_subscriber_state(true);
  });
}

void KeyIndex::start() {
  sub_->start();
  cmd_->start();
}

void KeyIndex::stop() {
  broken("stopping");
  sub_->stop();
  cmd_->stop();
}

void KeyIndex::broken(const std::string& why) {
  if (state_ != State::down) {
    PGC_LOG_WARN << "pattern index: " << why << "; pattern purges scan until it is rebuilt";
  }
  state_ = State::down;
  ++generation_;
  keys_.clear();
  auto pending = std::move(barriers_);
  barriers_.clear();
  for (auto& [id, done] : pending) done(false);
}

void KeyIndex::on_subscriber_state(bool up) {
  if (!up) {
    broken("subscription lost");
    return;
  }
  if (state_ != State::down || !cmd_->connected()) return;
  state_ = State::subscribing;
  std::uint64_t gen = generation_;
  // Keyspace events for new keys (n, Redis >= 7) and removals (g: del/unlink, x: expired,
  // e: evicted), on the keyevent channels (E). Other flags already set are kept.
  cmd_->command({"CONFIG", "GET", "notify-keyspace-events"}, [this, gen](Reply r) {
    if (gen != generation_) return;
    std::string flags = r.elements.size() == 2 ? r.elements[1].str : "";
    for (char f : std::string("Engxe"))
      if (flags.find(f) == std::string::npos && !(f != 'E' && f != 'n' && flags.find('A') != std::string::npos))
        flags.push_back(f);
    cmd_->command({"CONFIG", "SET", "notify-keyspace-events", flags}, [this, gen](Reply set) {
      if (gen != generation_) return;
      if (set.is_error()) {
        broken("cannot enable keyspace notifications: " + set.str);
        return;
      }
      sub_->subscribe({"PSUBSCRIBE", event_prefix_ + "*"}, [this](Reply m) { on_message(m); });
    });
  });
}

void KeyIndex::on_message(const Reply& r) {
  if (r.type != Reply::Type::array || r.elements.empty()) return;
  const std::string& kind = r.elements[0].str;
  if (kind == "psubscribe") {
    if (state_ != State::subscribing) return;
    // Subscribed first, then scanned: a key created meanwhile is seen by one or the other.
    state_ = State::building;
    ++rebuilds_;
    keys_.clear();
    PGC_LOG_INFO << "pattern index: building from SCAN";
    build_step("0");
    return;
  }
  if (kind != "pmessage" || r.elements.size() != 4) return;
  const std::string& channel = r.elements[2].str;
  const std::string& payload = r.elements[3].str;
  if (channel == barrier_channel_) {
    std::uint64_t token = std::stoull(payload);
    while (!barriers_.empty() && barriers_.begin()->first <= token) {
      auto done = std::move(barriers_.begin()->second);
      barriers_.erase(barriers_.begin());
      done(state_ == State::ready);
    }
    return;
  }
  if (channel.compare(0, event_prefix_.size(), event_prefix_) != 0) return;
  std::string_view event(channel);
  event.remove_prefix(event_prefix_.size());
  if (event == "new")
    keys_.insert(payload);
  else if (event == "del" || event == "expired" || event == "evicted")
    keys_.erase(payload);
}

void KeyIndex::build_step(std::string cursor) {
  std::uint64_t gen = generation_;
  cmd_->command({"SCAN", cursor, "COUNT", "1000"}, [this, gen](Reply r) {
    if (gen != generation_ || state_ != State::building) return;
    if (r.is_error() || r.type != Reply::Type::array || r.elements.size() != 2) {
      broken("SCAN failed: " + r.str);
      return;
    }
    for (auto& k : r.elements[1].elements) keys_.insert(std::move(k.str));
    if (r.elements[0].str != "0") {
      build_step(r.elements[0].str);
      return;
    }
    state_ = State::ready;
    PGC_LOG_INFO << "pattern index: ready with " << keys_.size() << " keys";
  });
}

void KeyIndex::barrier(std::function<void(bool)> done) {
  if (state_ != State::ready) {
    done(false);
    return;
  }
  std::uint64_t id = next_barrier_++;
  barriers_.emplace(id, std::move(done));
  std::uint64_t gen = generation_;
  cmd_->command({"PUBLISH", barrier_channel_, std::to_string(id)}, [this, gen](Reply r) {
    if (gen == generation_ && (r.is_error() || r.integer < 1)) broken("barrier not delivered");
  });
}

}  // namespace pgcohere::redis
