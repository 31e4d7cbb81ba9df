// Redis Cluster routing for the purger.
#include "redis/cluster_backend.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "redis/keyslot.h"
#include "util/log.h"

namespace pgcohere::redis {

namespace {
std::string addr_of(const std::string& host, long long port) { return host + ":" + std::to_string(port); }

bool split_addr(const std::string& addr, std::string& host, int& port) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) return false;
  host = addr.substr(0, colon);
  auto [p, ec] = std::from_chars(addr.data() + colon + 1, addr.data() + addr.size(), port);
  return ec == std::errc() && p == addr.data() + addr.size();
}

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" -> ("MOVED", slot, addr)
bool parse_redirect(const std::string& error, std::string& kind, int& slot, std::string& addr) {
  auto sp1 = error.find(' ');
  if (sp1 == std::string::npos) return false;
  kind = error.substr(0, sp1);
  if (kind != "MOVED" && kind != "ASK") return false;
  auto sp2 = error.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return false;
  auto [p, ec] = std::from_chars(error.data() + sp1 + 1, error.data() + sp2, slot);
  if (ec != std::errc() || slot < 0 || slot >= kClusterSlots) return false;
  addr = error.substr(sp2 + 1);
  return !addr.empty();
}

// Collects the replies of a split UNLINK: the keys removed, or the first error.
struct Gather {
  std::size_t remaining = 0;
  long long removed = 0;
  std::string error;
  Backend::Callback done;
  void add(const Reply& r) {
    if (r.is_error()) {
      if (error.empty()) error = r.str;
    } else {
      removed += r.integer;
    }
    if (--remaining == 0) {
      Reply out;
      if (!error.empty()) {
        out = Reply::make_error(error);
      } else {
        out.type = Reply::Type::integer;
        out.integer = removed;
      }
      done(std::move(out));
    }
  }
};
}  // namespace

ClusterBackend::ClusterBackend(boost::asio::io_context& io, std::vector<Endpoint> seeds, Timeouts timeouts)
    : io_(io), seeds_(std::move(seeds)), timeouts_(timeouts), refresh_timer_(io) {}

ClusterBackend::~ClusterBackend() { stop(); }

ClusterBackend::Node& ClusterBackend::node(const std::string& addr) {
  auto it = nodes_.find(addr);
  if (it != nodes_.end()) return it->second;
  std::string host;
  int port = 0;
  split_addr(addr, host, port);
  Node n;
  n.key = std::make_shared<AsyncClient>(io_, host, port, 0, "redis " + addr);
  n.bulk = std::make_shared<AsyncClient>(io_, host, port, 0, "redis-scan " + addr);
  n.key->set_timeouts(timeouts_.connect, timeouts_.command);
  n.bulk->set_timeouts(timeouts_.connect, timeouts_.command);
  auto on_state = [this, weak = weak_from_this()](bool up) {
    auto self = weak.lock();
    if (!self || !up) return;
    if (!have_map_) refresh();
    notify_ready();
  };
  n.key->on_state(on_state);
  n.bulk->on_state(on_state);
  if (!stopping_) {
    n.key->start();
    n.bulk->start();
  }
  return nodes_.emplace(addr, std::move(n)).first->second;
}

void ClusterBackend::start() {
  if (weak_from_this().expired())
    throw std::logic_error("ClusterBackend must be owned by a std::shared_ptr (std::make_shared)");
  stopping_ = false;
  for (const auto& s : seeds_) node(addr_of(s.host, s.port));
  for (auto& [addr, n] : nodes_) {
    n.key->start();
    n.bulk->start();
  }
  schedule_refresh(std::chrono::milliseconds(0));
}

void ClusterBackend::stop() {
  stopping_ = true;
  refresh_timer_.cancel();
  for (auto& [addr, n] : nodes_) {
    n.key->stop();
    n.bulk->stop();
  }
}

bool ClusterBackend::ready() const {
  if (!have_map_ || slots_.primaries().empty()) return false;
  for (const auto& addr : slots_.primaries()) {
    auto it = nodes_.find(addr);
    if (it == nodes_.end() || !it->second.key->connected() || !it->second.bulk->connected()) return false;
  }
  return true;
}

void ClusterBackend::notify_ready() {
  if (ready() && ready_handler_) ready_handler_();
}

std::string ClusterBackend::describe() const {
  std::string out = "cluster";
  for (const auto& s : seeds_) out += " " + addr_of(s.host, s.port);
  return out;
}

void ClusterBackend::schedule_refresh(std::chrono::milliseconds delay) {
  if (stopping_) return;
  refresh_timer_.expires_after(delay);
  refresh_timer_.async_wait([this, weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!ec && self) refresh();
  });
}

void ClusterBackend::refresh() {
  if (refreshing_ || stopping_) return;
  // Ask any connected node; the known primaries first, then the seeds.
  AsyncClient* via = nullptr;
  for (const auto& addr : slots_.primaries()) {
    auto it = nodes_.find(addr);
    if (it != nodes_.end() && it->second.key->connected()) {
      via = it->second.key.get();
      break;
    }
  }
  for (auto it = nodes_.begin(); !via && it != nodes_.end(); ++it)
    if (it->second.key->connected()) via = it->second.key.get();
  if (!via) {
    schedule_refresh(std::chrono::milliseconds(200));
    return;
  }
  refreshing_ = true;
  std::string host = via->host();
  via->command({"CLUSTER", "SLOTS"}, [this, host, weak = weak_from_this()](Reply r) {
    auto self = weak.lock();
    if (!self) return;
    refreshing_ = false;
    if (r.is_error() || r.type != Reply::Type::array || r.elements.empty()) {
      PGC_LOG_WARN << "redis cluster: CLUSTER SLOTS failed: " << (r.str.empty() ? "no slots" : r.str);
      schedule_refresh(std::chrono::milliseconds(500));
      return;
    }
    apply_slots(r, host);
  });
}

void ClusterBackend::apply_slots(const Reply& reply, const std::string& via_host) {
  // Any slot with a new owner (a reshard among the same primaries too, a failover) means
  // keys may have moved between nodes: a running pattern pass starts over.
  if (slots_.assign(reply, via_host)) {
    ++topology_;
    std::string list;
    for (const auto& p : slots_.primaries()) list += " " + p;
    PGC_LOG_INFO << "redis cluster: slot map changed; " << slots_.primaries().size() << " primaries:" << list;
  }
  have_map_ = true;
  for (const auto& addr : slots_.primaries()) node(addr);
  notify_ready();
}

void ClusterBackend::route(int slot, std::vector<std::string> argv, bool bulk, int attempt, std::string ask_addr,
                           Callback done) {
  std::string addr = ask_addr;
  if (addr.empty()) {
    const std::string* owner = slots_.owner(slot);
    if (!owner) {
      boost::asio::post(io_, [done = std::move(done), slot] {
        done(Reply::make_error("CLUSTERDOWN no owner known for slot " + std::to_string(slot)));
      });
      schedule_refresh(std::chrono::milliseconds(100));
      return;
    }
    addr = *owner;
  }
  Node& n = node(addr);
  AsyncClient& conn = bulk ? *n.bulk : *n.key;
  if (!ask_addr.empty()) conn.command({"ASKING"}, [](Reply) {});  // same connection, just before
  auto retry_argv = argv;
  conn.command(std::move(argv), [this, slot, bulk, attempt, retry_argv = std::move(retry_argv),
                                 done = std::move(done), weak = weak_from_this()](Reply r) mutable {
    auto self = weak.lock();
    if (!self) return;
    std::string kind, target;
    int redirect_slot = 0;
    if (r.is_error() && attempt < 5 && parse_redirect(r.str, kind, redirect_slot, target)) {
      // Keys are moving between nodes: a pattern pass running now may miss some of them
      // (already scanned on the target, not yet scanned on the source), so it starts over.
      ++topology_;
      if (kind == "MOVED") {
        ++moved_;
        // Point the slot at its new owner now; a full refresh follows for the rest.
        slots_.move(redirect_slot, target);
        schedule_refresh(std::chrono::milliseconds(0));
        route(slot, std::move(retry_argv), bulk, attempt + 1, "", std::move(done));
      } else {
        ++ask_;
        route(slot, std::move(retry_argv), bulk, attempt + 1, target, std::move(done));
      }
      return;
    }
    done(std::move(r));
  });
}

void ClusterBackend::unlink(std::vector<std::string> keys, bool bulk, Callback done) {
  std::map<int, std::vector<std::string>> by_slot;
  for (auto& k : keys) by_slot[keyslot(k)].push_back(std::move(k));
  if (by_slot.empty()) {
    boost::asio::post(io_, [done = std::move(done)] {
      Reply r;
      r.type = Reply::Type::integer;
      done(std::move(r));
    });
    return;
  }
  auto gather = std::make_shared<Gather>();
  gather->remaining = by_slot.size();
  gather->done = std::move(done);
  for (auto& [slot, group] : by_slot) {
    std::vector<std::string> argv;
    argv.reserve(group.size() + 1);
    argv.push_back("UNLINK");
    for (auto& k : group) argv.push_back(std::move(k));
    route(slot, std::move(argv), bulk, 0, "", [gather](Reply r) { gather->add(r); });
  }
}

void ClusterBackend::keyed(std::vector<std::string> argv, std::size_t key_index, Callback done) {
  int slot = key_index < argv.size() ? keyslot(argv[key_index]) : 0;
  route(slot, std::move(argv), false, 0, "", std::move(done));
}

void ClusterBackend::scan(const std::string& shard, std::vector<std::string> argv, Callback done) {
  // A cursor belongs to the node that issued it: never send it anywhere else.
  if (!slots_.is_primary(shard)) {
    boost::asio::post(io_, [done = std::move(done), shard] {
      done(Reply::make_error("not a primary any more: " + shard));
    });
    return;
  }
  node(shard).bulk->command(std::move(argv), std::move(done));
}

int ClusterBackend::last_slot_of(const std::string& shard) const {
  for (int slot = kClusterSlots - 1; slot >= 0; --slot) {
    const std::string* owner = slots_.owner(slot);
    if (owner && *owner == shard) return slot;
  }
  return -1;
}

std::string ClusterBackend::owner_of(int slot) const {
  const std::string* owner = slots_.owner(slot);
  return owner ? *owner : std::string();
}

}  // namespace pgcohere::redis
