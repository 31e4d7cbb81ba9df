// The read-your-writes watermark of one database (docs/cache.md, "Read-your-writes").
#include "invalidation/applied_watermark.h"

#include <algorithm>

namespace pgcohere::invalidation {

void AppliedWatermark::new_session() {
  // What was pending arrived before the connect resync that follows, which covers it.
  // Until that resync is done nothing moves (it is the only way forward: advance() needs a
  // baseline or a cover).
  have_base_ = false;
  pending_.clear();
  late_.clear();
}

namespace {
bool before(const AppliedWatermark::Applied& a, const AppliedWatermark::Applied& b) {
  return a.epoch < b.epoch || (a.epoch == b.epoch && a.pos < b.pos);
}
}  // namespace

AppliedWatermark::Ticket AppliedWatermark::observe(std::uint64_t epoch, std::uint64_t seq,
                                                   std::optional<std::uint64_t> pos, bool needs_resync,
                                                   bool for_cache) {
  if (epoch_ && epoch < *epoch_) return Ticket{epoch, seq, 0};  // the tracker calls it a replay anyway
  if (!epoch_ || epoch > *epoch_) {
    // Entries of the old epoch need no tracking any more: the new epoch's first
    // notification waits for a resync started after it (needs_resync), or the connect
    // resync of this session covers them (they arrived before it began).
    epoch_ = epoch;
    have_base_ = false;
    prefix_pos_.reset();
    highest_seq_ = 0;
    highest_pos_.reset();
    pending_.clear();
    late_.clear();
    cache_pos_.reset();
    cache_pending_ = false;
  }
  if (for_cache) cache_pending_ = true;
  if (pos && cache_pending_) {
    cache_pos_ = std::max(cache_pos_.value_or(0), *pos);
    cache_pending_ = false;
  }
  if (!have_base_) {
    // Seqs below the first one of a session or epoch were either received in an earlier
    // session (covered by this session's connect resync) or committed before LISTEN.
    base_ = seq > 0 ? seq - 1 : 0;
    have_base_ = true;
  }
  highest_seq_ = std::max(highest_seq_, seq);
  if (pos) highest_pos_ = std::max(highest_pos_.value_or(0), *pos);
  Entry e{pos, ++arrivals_, false, needs_resync};
  (seq > base_ ? pending_ : late_)[seq] = e;
  advance();
  return Ticket{epoch, seq, e.arrival};
}

void AppliedWatermark::completed(const Ticket& t) {
  if (!epoch_ || t.epoch != *epoch_ || t.arrival == 0) return;
  for (auto* m : {&pending_, &late_}) {
    auto it = m->find(t.seq);
    if (it == m->end() || it->second.arrival != t.arrival || it->second.needs_resync) continue;
    if (m == &late_) {
      m->erase(it);
    } else {
      it->second.done = true;
    }
  }
  advance();
}

AppliedWatermark::ResyncToken AppliedWatermark::resync_started() {
  Cover c;
  c.epoch = epoch_;
  c.seq = highest_seq_;
  c.pos = highest_pos_;
  c.arrival = arrivals_;
  std::uint64_t id = next_token_++;
  resyncs_.emplace(id, c);
  return ResyncToken{id};
}

void AppliedWatermark::resync_completed(ResyncToken token) {
  auto it = resyncs_.find(token.id);
  if (it == resyncs_.end()) return;
  Cover c = it->second;
  // A later resync covers everything an earlier one does: those are done too, even if
  // their purge was dropped (the purger's backlog overflow).
  resyncs_.erase(resyncs_.begin(), std::next(it));
  // Every notification that arrived before the resync began is covered, whatever its seq.
  for (auto* m : {&pending_, &late_}) std::erase_if(*m, [&](const auto& kv) { return kv.second.arrival <= c.arrival; });
  if (epoch_ && c.epoch == epoch_) {
    // So is every seq up to the highest one seen then, received or lost (a gap). One that
    // arrives later in spite of it goes to late_.
    if (have_base_ && c.seq > base_) {
      base_ = c.seq;
      for (auto e = pending_.begin(); e != pending_.end() && e->first <= base_;) {
        if (!e->second.done) late_[e->first] = e->second;
        e = pending_.erase(e);
      }
    }
    if (c.pos) prefix_pos_ = std::max(prefix_pos_.value_or(0), *c.pos);
  }
  advance();
}

bool AppliedWatermark::worth_storing(const std::optional<Applied>& stored) const {
  if (!applied_ || (stored && !before(*stored, *applied_))) return false;
  return epoch_ && cache_pos_ && (!stored || before(*stored, Applied{*epoch_, *cache_pos_}));
}

bool AppliedWatermark::frozen() const { return !resyncs_.empty() || !late_.empty(); }

void AppliedWatermark::advance() {
  if (!epoch_) return;
  for (auto it = pending_.begin(); have_base_ && it != pending_.end() && it->first == base_ + 1 && it->second.done;) {
    if (it->second.pos) prefix_pos_ = std::max(prefix_pos_.value_or(0), *it->second.pos);
    base_ = it->first;
    it = pending_.erase(it);
  }
  // While a resync runs, or a late notification is not purged, nothing more is promised.
  if (frozen() || !prefix_pos_) return;
  Applied next{*epoch_, *prefix_pos_};
  if (!applied_ || next.epoch > applied_->epoch || (next.epoch == applied_->epoch && next.pos > applied_->pos))
    applied_ = next;
}

}  // namespace pgcohere::invalidation
