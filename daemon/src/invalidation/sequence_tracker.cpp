// Sequence and epoch tracking of one database's invalidation stream.
#include "invalidation/sequence_tracker.h"

namespace pgcohere::invalidation {

void SequenceTracker::reset_session() {
  have_baseline_ = false;
  fresh_session_ = true;
  gap_times_.clear();
  floor_ = highest_;  // the resync after connect covers everything sent before it
}

void SequenceTracker::start_epoch(std::uint64_t epoch, std::uint64_t seq) {
  epoch_ = epoch;
  applied_.clear();
  gap_times_.clear();
  highest_ = seq;
  floor_ = seq > 0 ? seq - 1 : 0;
  have_baseline_ = true;
}

SequenceTracker::Verdict SequenceTracker::observe(std::uint64_t epoch, std::uint64_t seq, TimePoint now) {
  // The extension's epochs only grow per database (they are start or claim times), so a
  // lower one can only be a captured payload sent again. It must never replace the current
  // epoch: that would turn every genuine payload after it into a "replay".
  if (epoch_ && epoch < *epoch_) return Verdict::replay;
  bool fresh = fresh_session_;
  fresh_session_ = false;
  if (!epoch_ || epoch > *epoch_) {
    // First payload since the daemon started (a baseline, whatever its seq), or a newer epoch.
    bool had_epoch = epoch_.has_value();
    start_epoch(epoch, seq);
    applied_.insert(seq);
    // After a connect, the connect's own resync covers whatever the old epoch lost.
    return had_epoch && !fresh ? Verdict::apply_and_resync : Verdict::apply;
  }
  if (!have_baseline_) {
    have_baseline_ = true;
    if (seq > 0 && seq - 1 > floor_) floor_ = seq - 1;
  }
  if (highest_ >= kWindow && seq <= highest_ - kWindow) return Verdict::replay;
  if (!applied_.insert(seq).second) return Verdict::replay;
  if (seq > highest_) {
    // Any jump, however big (the extension restarts its direct-mode seqs at the install time
    // in microseconds after DROP/CREATE EXTENSION), is a gap: resync once the grace is over.
    if (seq - highest_ > 1 && seq - 1 > floor_) gap_times_.emplace(seq, now);
    highest_ = seq;
  }
  while (floor_ < highest_ && applied_.count(floor_ + 1)) ++floor_;
  if (floor_ < highest_) {
    while (!gap_times_.empty() && gap_times_.begin()->first <= floor_ + 1) gap_times_.erase(gap_times_.begin());
  } else {
    gap_times_.clear();
  }
  if (highest_ >= kWindow)
    applied_.erase(applied_.begin(), applied_.lower_bound(highest_ - kWindow + 1));
  return Verdict::apply;
}

std::optional<SequenceTracker::TimePoint> SequenceTracker::next_deadline() const {
  if (floor_ >= highest_) return std::nullopt;
  auto it = gap_times_.upper_bound(floor_ + 1);
  if (it == gap_times_.end()) return std::nullopt;
  return it->second + grace_;
}

bool SequenceTracker::gap_expired(TimePoint now) const {
  auto deadline = next_deadline();
  return deadline && now >= *deadline;
}

void SequenceTracker::resynced() {
  floor_ = highest_;
  gap_times_.clear();
}

std::size_t SequenceTracker::missing() const {
  if (floor_ >= highest_) return 0;
  std::size_t applied_between = 0;
  for (auto it = applied_.upper_bound(floor_); it != applied_.end() && *it <= highest_; ++it) ++applied_between;
  return static_cast<std::size_t>(highest_ - floor_) - applied_between;
}

}  // namespace pgcohere::invalidation
