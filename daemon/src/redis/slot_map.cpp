// The cluster's slot -> primary map.
#include "redis/slot_map.h"

#include <algorithm>

#include "redis/keyslot.h"

namespace pgcohere::redis {

SlotMap::SlotMap() : owner_(kClusterSlots, -1) {}

int SlotMap::index_of(const std::string& addr) {
  auto it = std::find(primaries_.begin(), primaries_.end(), addr);
  if (it == primaries_.end()) {
    primaries_.push_back(addr);
    return static_cast<int>(primaries_.size() - 1);
  }
  return static_cast<int>(it - primaries_.begin());
}

bool SlotMap::assign(const Reply& reply, const std::string& via_host) {
  SlotMap next;
  for (const auto& range : reply.elements) {
    if (range.type != Reply::Type::array || range.elements.size() < 3) continue;
    const auto& master = range.elements[2];
    if (master.type != Reply::Type::array || master.elements.size() < 2) continue;
    std::string host = master.elements[0].str.empty() ? via_host : master.elements[0].str;
    int index = next.index_of(host + ":" + std::to_string(master.elements[1].integer));
    long long lo = range.elements[0].integer, hi = range.elements[1].integer;
    for (long long s = std::max(0LL, lo); s <= hi && s < kClusterSlots; ++s)
      next.owner_[static_cast<std::size_t>(s)] = index;
  }
  std::vector<std::string> before = primaries_, after = next.primaries_;
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  bool changed = before != after;
  for (int s = 0; !changed && s < kClusterSlots; ++s) {
    const std::string *a = owner(s), *b = next.owner(s);
    changed = (a == nullptr) != (b == nullptr) || (a && *a != *b);
  }
  *this = std::move(next);
  return changed;
}

bool SlotMap::move(int slot, const std::string& addr) {
  if (slot < 0 || slot >= kClusterSlots) return false;
  const std::string* now = owner(slot);
  if (now && *now == addr) return false;
  owner_[static_cast<std::size_t>(slot)] = index_of(addr);
  return true;
}

const std::string* SlotMap::owner(int slot) const {
  if (slot < 0 || slot >= kClusterSlots) return nullptr;
  int index = owner_[static_cast<std::size_t>(slot)];
  if (index < 0 || static_cast<std::size_t>(index) >= primaries_.size()) return nullptr;
  return &primaries_[static_cast<std::size_t>(index)];
}

bool SlotMap::is_primary(const std::string& addr) const {
  return std::find(primaries_.begin(), primaries_.end(), addr) != primaries_.end();
}

}  // namespace pgcohere::redis
