// Per-database bookkeeping of (epoch, seq): tells the consumer whether a verified payload is
// new, a replay, or reveals that invalidations were lost (gap, new epoch) so that it must
// resync. Pure: time comes in as arguments, so tests use a fake clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <map>
#include <set>
#include <string>

namespace pgcohere::invalidation {

class SequenceTracker {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  enum class Verdict {
    apply,              // new: act on it
    apply_and_resync,   // new, in an epoch above the current one: act on it and resync
    replay,             // already applied, older than the window, or from a lower epoch
                        // (epochs only grow): ignore and count
  };

  // `grace`: how long a missing seq may stay missing (direct mode commits out of order and
  // may skip a seq) before it counts as lost.
  explicit SequenceTracker(std::chrono::milliseconds grace = std::chrono::milliseconds(500))
      : grace_(grace) {}

  // A fresh LISTEN session: what was sent before it is covered by the resync that follows a
  // connect, so the next payload starts a new baseline (but its epoch is remembered).
  void reset_session();

  Verdict observe(std::uint64_t epoch, std::uint64_t seq, TimePoint now);

  // True once a missing seq has been missing for longer than the grace period. The caller
  // then resyncs and calls resynced().
  bool gap_expired(TimePoint now) const;
  // Earliest time at which gap_expired() may become true (to arm a timer).
  std::optional<TimePoint> next_deadline() const;
  // A resync has been started: everything up to the highest seq seen counts as covered.
  void resynced();

  std::optional<std::uint64_t> epoch() const { return epoch_; }
  std::uint64_t floor() const { return floor_; }
  std::uint64_t highest() const { return highest_; }
  std::size_t missing() const;

  // Seqs further than this below the highest one are treated as replays.
  static constexpr std::uint64_t kWindow = 1 << 16;

 private:
  void start_epoch(std::uint64_t epoch, std::uint64_t seq);

  std::chrono::milliseconds grace_;
  std::optional<std::uint64_t> epoch_;
  bool have_baseline_ = false;          // false right after connect
  bool fresh_session_ = true;           // no payload yet since connect
  std::uint64_t floor_ = 0;             // every seq <= floor_ is applied or covered by a resync
  std::uint64_t highest_ = 0;
  std::set<std::uint64_t> applied_;     // applied seqs within the window (replay detection)
  // seq -> when it arrived and revealed that the seqs between the previous highest and it
  // were missing.
  std::map<std::uint64_t, TimePoint> gap_times_;
};

}  // namespace pgcohere::invalidation
