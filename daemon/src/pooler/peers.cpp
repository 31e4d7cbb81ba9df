// Cancel forwarding between peered processes (see peers.h).
#include "pooler/peers.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "net/unix_socket.h"
#include "pooler/cancel_key.h"
#include "pooler/cancel_request.h"
#include "util/log.h"

// g++ 12 misreads Asio 1.18's coroutine frame allocator (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace pgcohere::pooler {

namespace asio = boost::asio;
using asio::use_awaitable;
using generic_stream = asio::generic::stream_protocol;

void Peers::configure(const config::Config& c) {
  std::map<int, std::shared_ptr<Peer>> next;
  for (const config::ConnEntry& e : c.peers) {
    int id = std::stoi(e.name);  // validated: 1..16383
    auto old = peers_.find(id);
    auto p = old != peers_.end() ? old->second : std::make_shared<Peer>();
    p->id = id;
    p->host = e.get("host");
    // A peer on the same port (so_reuseport) is the usual case; PgBouncer's pool_size
    // default is default_pool_size too.
    p->port = std::stoi(e.get("port", std::to_string(c.daemon.listen_port)));
    p->pool_size = std::stoi(e.get("pool_size", std::to_string(c.daemon.default_pool_size)));
    next[id] = p;
  }
  peers_ = std::move(next);
}

std::vector<Peers::Peer> Peers::list() const {
  std::vector<Peer> out;
  for (auto& [id, p] : peers_) out.push_back(*p);
  return out;
}

void Peers::forward(int peer_id, std::int32_t pid, std::int32_t key, std::chrono::steady_clock::duration limit) {
  auto it = peers_.find(peer_id);
  if (it == peers_.end()) return;
  std::shared_ptr<Peer> peer = it->second;
  if (peer->in_flight >= peer->pool_size) {
    count_dropped();
    PGC_LOG_DEBUG << "cancel request for peer " << peer_id << " dropped: " << peer->in_flight
                  << " already in flight (its pool_size)";
    return;
  }
  peer->in_flight++;
  asio::co_spawn(
      io_,
      [peer, pid, key, limit, &io = io_, forwarded = forwarded_, dropped = late_dropped_]() -> asio::awaitable<void> {
        generic_stream::endpoint ep;
        bool resolved = true;
        if (!peer->host.empty() && (peer->host[0] == '/' || peer->host[0] == '@')) {
          ep = generic_stream::endpoint(
              asio::local::stream_protocol::endpoint(net::unix_socket_path(peer->host, peer->port)));
        } else {
          boost::system::error_code ec;
          asio::ip::tcp::resolver resolver(io);
          auto results = co_await resolver.async_resolve(peer->host, std::to_string(peer->port),
                                                         asio::redirect_error(use_awaitable, ec));
          if (ec || results.empty()) {
            PGC_LOG_WARN << "[peers] " << peer->id << ": could not resolve " << peer->host << ": " << ec.message();
            resolved = false;
          } else {
            ep = generic_stream::endpoint(results.begin()->endpoint());
          }
        }
        if (resolved) {
          co_await send_cancel_request(io, ep, cancel_keys::mark_forwarded(pid), key, limit);
          ++*forwarded;
          PGC_LOG_DEBUG << "cancel request forwarded to peer " << peer->id;
        } else {
          ++*dropped;
        }
        peer->in_flight--;
      },
      asio::detached);
}

}  // namespace pgcohere::pooler
