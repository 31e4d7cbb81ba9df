// Which primary owns each Redis Cluster hash slot, by node address ("host:port"). Pure:
// fed CLUSTER SLOTS replies and MOVED redirects, it says whether the map changed, so that a
// running pattern pass can start over instead of continuing on a keyspace that moved.
#pragma once

#include <string>
#include <vector>

#include "redis/reply.h"

namespace pgcohere::redis {

class SlotMap {
 public:
  SlotMap();

  // Replaces the map with a CLUSTER SLOTS reply (`via_host` stands in for an empty host).
  // True if any slot now has another owner, or the set of primaries changed.
  bool assign(const Reply& reply, const std::string& via_host);
  // A MOVED redirect: `slot` now belongs to `addr`. True if that changed the map.
  bool move(int slot, const std::string& addr);

  // "host:port" of the slot's primary, or nullptr while unknown.
  const std::string* owner(int slot) const;
  // Every primary, each once, in the order CLUSTER SLOTS listed them.
  const std::vector<std::string>& primaries() const { return primaries_; }
  bool is_primary(const std::string& addr) const;

 private:
  int index_of(const std::string& addr);

  std::vector<std::string> primaries_;
  std::vector<int> owner_;  // slot -> index in primaries_, -1 unknown
};

}  // namespace pgcohere::redis
