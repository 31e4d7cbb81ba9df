// What the purger needs from a pattern index: whether it can answer a pattern (the prefix
// whose set holds every key the pattern can match), and the purge of such patterns. One
// Redis server: PrefixIndex; a Redis Cluster: ClusterPrefixIndex, one PrefixIndex per
// primary.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::invalidation {

struct PrefixIndexCounters {
  std::uint64_t builds = 0;           // SCAN passes that (re)built the index
  std::uint64_t entries_added = 0;    // members SADD created
  std::uint64_t entries_trimmed = 0;  // members of vanished keys dropped by the trim
  std::uint64_t trims = 0;            // trim passes completed
  std::uint64_t unavailable = 0;      // probes that found keyspace notifications off
};

class PatternIndex {
 public:
  struct Work {
    std::string pattern;
    std::string prefix;
    // Cluster, a pattern of one hash slot purged on that slot's node only: a key of that
    // slot (never written) whose EXISTS, sent after the purge, must not be redirected
    // (MOVED or ASK: the slot moved or is moving, so keys may be listed on another node
    // too); a redirect fails the purge, which is then scanned.
    std::string slot_check;
  };
  struct Result {
    bool ok = false;            // false: the index broke meanwhile; scan these patterns
    std::uint64_t removed = 0;  // keys that existed
    std::uint64_t visited = 0;  // set members looked at
  };

  virtual ~PatternIndex() = default;
  virtual void start() = 0;
  virtual void stop() = 0;
  // The key templates of one source (a database's rules and declared families, read at
  // every resync). A shape not indexed before starts a SCAN pass.
  virtual void set_families(const std::string& source, const std::vector<std::string>& templates) = 0;
  // Notifications verified, families known, and built since the last gap.
  virtual bool ready() const = 0;
  // The prefix whose set answers `pattern`, if the index can (see KeyFamilies::prefix_for).
  virtual std::optional<std::string> prefix_for(std::string_view pattern) const = 0;
  // Barrier, then each pattern's set: all members and the set for "<prefix>*", the
  // matching members otherwise.
  virtual void purge(std::vector<Work> work, std::function<void(Result)> done) = 0;
  virtual PrefixIndexCounters counters() const = 0;
  virtual std::size_t families() const = 0;
};

}  // namespace pgcohere::invalidation
