// [peers] (PgBouncer's peering): the other pgcohered processes that share this one's
// clients, typically on one port with so_reuseport. A CancelRequest whose key names
// another peer (pooler/cancel_key.h) is sent on to that peer as a CancelRequest of its
// own; nothing else is exchanged between peers.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace pgcohere::pooler {

class Peers {
 public:
  struct Peer {
    int id = 0;
    std::string host;  // an address, or the directory of the peer's Unix socket ('/' or '@')
    int port = 0;
    int pool_size = 0;      // forwards to this peer in flight at most; more are dropped
    int in_flight = 0;      // forwarded cancels not yet closed by the peer
  };

  explicit Peers(boost::asio::io_context& io) : io_(io) {}

  // At start and at each reload; counters of peers that stay are kept.
  void configure(const config::Config& c);
  bool knows(int peer_id) const { return peers_.count(peer_id) > 0; }
  // Sends the CancelRequest on to `peer_id` (which knows() it), marked as forwarded so that
  // it is not sent on again; waits at most `limit` for the peer to take it.
  void forward(int peer_id, std::int32_t pid, std::int32_t key, std::chrono::steady_clock::duration limit);
  // In peer_id order (SHOW PEERS, SHOW PEER_POOLS).
  std::vector<Peer> list() const;
  // A cancel for another peer that goes nowhere (unknown peer, not ours again, over
  // pool_size, unresolvable host); /metrics counts them with the forwarded ones.
  void count_dropped() { ++dropped_; }
  std::uint64_t forwarded() const { return *forwarded_; }
  std::uint64_t dropped() const { return dropped_ + *late_dropped_; }

 private:
  boost::asio::io_context& io_;
  // shared: a forward in flight keeps its peer's counters alive across a reload.
  std::map<int, std::shared_ptr<Peer>> peers_;
  std::uint64_t dropped_ = 0;
  // Counted by forwards that finish later; shared so they outlive a reload's new map.
  std::shared_ptr<std::uint64_t> forwarded_ = std::make_shared<std::uint64_t>(0);
  std::shared_ptr<std::uint64_t> late_dropped_ = std::make_shared<std::uint64_t>(0);
};

}  // namespace pgcohere::pooler
