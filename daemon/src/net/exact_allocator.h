// An allocator for the handler of an operation that stays pending for long, such as an idle
// client's wait for its next message. Without one, Asio takes the operation's memory from a
// per-thread cache that hands out the last block freed whenever it is big enough, so a wait
// of about 150 bytes can keep a write's block of 300 for as long as the client stays idle.
// A handler whose get_allocator() returns this one gets a block of the operation's own size.
#pragma once

#include <cstddef>
#include <new>

namespace pgcohere::net {

template <typename T>
struct ExactAllocator {
  using value_type = T;
  ExactAllocator() noexcept = default;
  template <typename U>
  ExactAllocator(const ExactAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  template <typename U>
  bool operator==(const ExactAllocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const ExactAllocator<U>&) const noexcept { return false; }
};

}  // namespace pgcohere::net
