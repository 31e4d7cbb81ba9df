// Who listens to which channel, for one database's LISTEN connection: the channels it must
// LISTEN on (the union of its clients'), the clients a notification goes to, and the
// generation of each channel's latest LISTEN so that an acknowledgement that arrives after
// an UNLISTEN and a new LISTEN of the same channel is not taken for the new one. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace pgcohere::notify {

class ChannelRegistry {
 public:
  using Id = std::uint64_t;  // a client

  // Adds `who` to `channel`. True when the channel had no listener before: the connection
  // must LISTEN on it (and remember the returned generation, see listen_sent()).
  bool subscribe(Id who, const std::string& channel);
  // Removes `who` from `channel`. True when that left the channel without listeners: the
  // connection may UNLISTEN it.
  bool unsubscribe(Id who, const std::string& channel);
  // Removes `who` everywhere (UNLISTEN *, disconnect); the channels left without listeners.
  std::vector<std::string> unsubscribe_all(Id who);

  // The connection sent LISTEN for `channel`: the generation its acknowledgement carries.
  std::uint64_t listen_sent(const std::string& channel);
  // The LISTEN of generation `gen` was acknowledged: true when it is the channel's latest
  // (the channel is then active: notifications on it reach its listeners).
  bool listen_acknowledged(const std::string& channel, std::uint64_t gen);
  // The connection was lost: no channel is active until LISTENed again.
  void connection_lost();
  bool active(const std::string& channel) const;

  // Listeners of `channel` (nullptr when none), in id order.
  const std::set<Id>* listeners(const std::string& channel) const;
  bool listening(Id who, const std::string& channel) const;
  std::vector<std::string> channels() const;  // every channel with a listener
  std::vector<std::string> channels_of(Id who) const;
  std::size_t channel_count() const { return channels_.size(); }
  std::size_t subscription_count() const { return subscriptions_; }
  std::size_t client_count() const { return by_client_.size(); }
  bool empty() const { return channels_.empty(); }

 private:
  struct Channel {
    std::set<Id> listeners;
    std::uint64_t gen = 0;  // of the latest LISTEN sent; 0: none sent on this connection
    bool active = false;
  };
  std::map<std::string, Channel> channels_;
  std::map<Id, std::set<std::string>> by_client_;
  std::size_t subscriptions_ = 0;
  std::uint64_t next_gen_ = 1;
};

// A client's notifications not yet written to it, as encoded NotificationResponse
// messages, bounded in bytes: a client that does not read them (or stays inside one
// transaction) cannot make the daemon buffer without limit.
class PendingNotifications {
 public:
  explicit PendingNotifications(std::size_t max_bytes) : max_bytes_(max_bytes) {}
  // Appends one message; false (nothing appended) when it would pass the bound.
  bool push(std::string_view message);
  // Appends every pending message to `out` and forgets them.
  void move_to(std::string& out);
  bool empty() const { return bytes_.empty(); }
  std::size_t size() const { return bytes_.size(); }

 private:
  std::size_t max_bytes_;
  std::string bytes_;
};

// The bound of PendingNotifications per client: about 1,000 notifications of 1 kB.
inline constexpr std::size_t kMaxPendingNotificationBytes = 1024 * 1024;

}  // namespace pgcohere::notify
