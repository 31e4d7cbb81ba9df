// Read-your-writes, daemon side: per database, the highest commit position (what the
// extension reports to a committing session as pgcohere.published) whose invalidations are
// all purged. Pure: it only reacts to events (a notification accepted, its purge done, a
// resync started and done), so tests drive it without a clock, Redis or PostgreSQL.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace pgcohere::invalidation {

class AppliedWatermark {
 public:
  struct Applied {
    std::uint64_t epoch = 0;
    std::uint64_t pos = 0;
    friend bool operator==(const Applied&, const Applied&) = default;
  };
  // Names one accepted notification for completed().
  struct Ticket {
    std::uint64_t epoch = 0;
    std::uint64_t seq = 0;
    std::uint64_t arrival = 0;  // 0: not tracked (a payload of an older epoch)
  };
  struct ResyncToken {
    std::uint64_t id = 0;
  };

  // A fresh LISTEN session: what the daemon did not receive before it is covered by the
  // connect resync, so the next seq starts a new baseline.
  void new_session();
  // A notification the SequenceTracker accepted (apply or apply_and_resync). `pos`: the
  // header's pos field (absent from older extensions: it then moves nothing by itself).
  // `needs_resync`: its commits are covered only by a resync started after it (it carries
  // an 'r' entry, or opened a new epoch): its own purge does not count.
  // `for_cache`: it carries something the query cache depends on (a tag, a policy change, a
  // resync); the extension moves a session's pgcohere.published only for such commits.
  Ticket observe(std::uint64_t epoch, std::uint64_t seq, std::optional<std::uint64_t> pos, bool needs_resync,
                 bool for_cache = true);
  // The purge of that notification is complete.
  void completed(const Ticket& ticket);
  // A resync's purge is about to be submitted: it covers every notification accepted so
  // far (their commits precede it) and every seq up to the highest one seen, received or
  // not. Call right before submitting it, with no notification handled in between.
  ResyncToken resync_started();
  // That resync's purge is complete (also ends every resync started before it, in case
  // their purges were dropped).
  void resync_completed(ResyncToken token);

  // Every commit of this epoch with a position <= pos is purged, and so is every commit
  // of an earlier epoch. Empty until something is known. Never moves backwards.
  std::optional<Applied> applied() const { return applied_; }
  // Whether storing applied() over `stored` (what Redis holds) would tell a session anything
  // new: only if some cache-relevant commit is still past `stored`. Purges of application
  // keys alone then cost no write.
  bool worth_storing(const std::optional<Applied>& stored) const;

  // For tests and metrics.
  std::size_t pending() const { return pending_.size() + late_.size(); }
  bool frozen() const;

 private:
  struct Entry {
    std::optional<std::uint64_t> pos;
    std::uint64_t arrival = 0;
    bool done = false;
    bool needs_resync = false;
  };
  struct Cover {
    std::optional<std::uint64_t> epoch;
    std::uint64_t seq = 0;             // highest seq seen in `epoch` at the start
    std::optional<std::uint64_t> pos;  // highest pos seen in `epoch` at the start
    std::uint64_t arrival = 0;         // notifications accepted before the start
  };
  void advance();

  std::optional<std::uint64_t> epoch_;
  bool have_base_ = false;
  std::uint64_t base_ = 0;                   // every seq <= base_ of epoch_ is purged or covered by a resync
  std::optional<std::uint64_t> prefix_pos_;  // highest pos among those
  std::uint64_t highest_seq_ = 0;            // of epoch_
  std::optional<std::uint64_t> highest_pos_;
  std::uint64_t arrivals_ = 0;
  std::map<std::uint64_t, Entry> pending_;  // seq > base_, in seq order
  // Arrived after a resync had moved base_ past their seq (out of order): they may have
  // committed after that resync began, so applied_ stays where it is until they are done.
  std::map<std::uint64_t, Entry> late_;
  std::map<std::uint64_t, Cover> resyncs_;  // started, not completed, by token id
  std::uint64_t next_token_ = 1;
  std::optional<Applied> applied_;
  // The highest position (of epoch_) that covers a cache-relevant commit; a chunk of a batch
  // carries no pos but the batch's last chunk does (cache_pending_ until then).
  std::optional<std::uint64_t> cache_pos_;
  bool cache_pending_ = false;
};

}  // namespace pgcohere::invalidation
