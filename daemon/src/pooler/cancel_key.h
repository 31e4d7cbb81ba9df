// Cancel keys of several peered processes (PgBouncer's peer_id and [peers]): which process
// handed out a BackendKeyData is written in the key itself, so a CancelRequest that lands on
// another process (so_reuseport spreads connections at random) can be sent on to the right
// one without asking anybody. Pure: no sockets, the randomness is passed in.
#pragma once

#include <cstdint>

namespace pgcohere::pooler::cancel_keys {

// PgBouncer's range for peer_id (0: this process is not peered).
constexpr int kMaxPeerId = 16383;

// The pid half of BackendKeyData, as handed out (positive: some clients reject or
// mangle a negative pid):
//   bit 31: 0 | bit 30: forwarded by a peer | bits 16-29: peer_id | bits 0-15: random
// Without a peer_id all 31 low bits are random. The key half is 32 random bits either way,
// so a peered key still carries 48 random bits.
constexpr std::int32_t kForwardedBit = 1 << 30;
constexpr int kPeerShift = 16;

// A client's pid from 31+ random bits; 0 is never returned (it means "no key").
inline std::int32_t make_pid(int peer_id, std::uint32_t random) {
  if (peer_id <= 0) {
    auto pid = static_cast<std::int32_t>(random & 0x7fffffff);
    return pid == 0 ? 1 : pid;
  }
  return static_cast<std::int32_t>((static_cast<std::uint32_t>(peer_id) << kPeerShift) | (random & 0xffff));
}

// The peer_id a pid names (0 for keys made without one, whose bits 16-29 are random).
inline int peer_of(std::int32_t pid) { return (static_cast<std::uint32_t>(pid) >> kPeerShift) & kMaxPeerId; }

inline bool forwarded(std::int32_t pid) { return (pid & kForwardedBit) != 0; }
// What a process sends to the peer: the same key, marked as already forwarded once.
inline std::int32_t mark_forwarded(std::int32_t pid) { return pid | kForwardedBit; }
// The pid the client was given (the mark removed).
inline std::int32_t original_pid(std::int32_t pid) { return pid & ~kForwardedBit; }

enum class Route {
  local,           // one of ours: look the client up
  forward,         // another peer's, and [peers] says where it is: send it there
  unknown_peer,    // another peer's, not in [peers]: dropped (a cancel is best-effort)
  not_ours_again,  // forwarded to us by a peer but not ours either: dropped, so no loop
};

// Where a CancelRequest with `pid` goes, on the process whose peer_id is `own_peer_id`.
// `peer_known`: whether [peers] lists peer_of(pid). A process without a peer_id treats
// every key as its own (as before peering existed).
inline Route route(int own_peer_id, std::int32_t pid, bool peer_known) {
  if (own_peer_id <= 0) return Route::local;
  int peer = peer_of(pid);
  if (peer == own_peer_id) return Route::local;
  if (forwarded(pid)) return Route::not_ours_again;
  return peer_known ? Route::forward : Route::unknown_peer;
}

}  // namespace pgcohere::pooler::cancel_keys
