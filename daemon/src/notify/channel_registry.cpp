// Channel bookkeeping of a LISTEN connection (see channel_registry.h).
#include "notify/channel_registry.h"

namespace pgcohere::notify {

bool ChannelRegistry::subscribe(Id who, const std::string& channel) {
  auto [it, fresh] = channels_.try_emplace(channel);
  if (!it->second.listeners.insert(who).second) return false;
  by_client_[who].insert(channel);
  ++subscriptions_;
  return fresh;
}

bool ChannelRegistry::unsubscribe(Id who, const std::string& channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end() || !it->second.listeners.erase(who)) return false;
  --subscriptions_;
  auto c = by_client_.find(who);
  c->second.erase(channel);
  if (c->second.empty()) by_client_.erase(c);
  if (!it->second.listeners.empty()) return false;
  channels_.erase(it);
  return true;
}

std::vector<std::string> ChannelRegistry::unsubscribe_all(Id who) {
  std::vector<std::string> emptied;
  auto c = by_client_.find(who);
  if (c == by_client_.end()) return emptied;
  std::set<std::string> mine = std::move(c->second);
  by_client_.erase(c);
  for (const auto& channel : mine) {
    auto it = channels_.find(channel);
    it->second.listeners.erase(who);
    --subscriptions_;
    if (it->second.listeners.empty()) {
      channels_.erase(it);
      emptied.push_back(channel);
    }
  }
  return emptied;
}

std::uint64_t ChannelRegistry::listen_sent(const std::string& channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return 0;
  it->second.gen = next_gen_++;
  return it->second.gen;
}

bool ChannelRegistry::listen_acknowledged(const std::string& channel, std::uint64_t gen) {
  auto it = channels_.find(channel);
  if (it == channels_.end() || it->second.gen != gen || gen == 0) return false;
  it->second.active = true;
  return true;
}

void ChannelRegistry::connection_lost() {
  for (auto& [name, c] : channels_) {
    c.active = false;
    c.gen = 0;
  }
}

bool ChannelRegistry::active(const std::string& channel) const {
  auto it = channels_.find(channel);
  return it != channels_.end() && it->second.active;
}

const std::set<ChannelRegistry::Id>* ChannelRegistry::listeners(const std::string& channel) const {
  auto it = channels_.find(channel);
  return it == channels_.end() ? nullptr : &it->second.listeners;
}

bool ChannelRegistry::listening(Id who, const std::string& channel) const {
  auto it = channels_.find(channel);
  return it != channels_.end() && it->second.listeners.count(who);
}

std::vector<std::string> ChannelRegistry::channels() const {
  std::vector<std::string> out;
  for (const auto& [name, c] : channels_) out.push_back(name);
  return out;
}

std::vector<std::string> ChannelRegistry::channels_of(Id who) const {
  auto c = by_client_.find(who);
  if (c == by_client_.end()) return {};
  return {c->second.begin(), c->second.end()};
}

bool PendingNotifications::push(std::string_view message) {
  if (bytes_.size() + message.size() > max_bytes_) return false;
  bytes_.append(message);
  return true;
}

void PendingNotifications::move_to(std::string& out) {
  out.append(bytes_);
  bytes_.clear();
  if (bytes_.capacity() > 64 * 1024) std::string().swap(bytes_);  // a burst should not stay resident
}

}  // namespace pgcohere::notify
