// The registries a client connection belongs to: every client and the clients still logging
// in (the listener's), the clients of its pool and those of them not parked (its pool's).
// Intrusive lists: a membership is two pointers inside ClientConn, not a 48-byte tree node,
// and joining or leaving allocates nothing (10,000 idle clients hold their memory for as
// long as they stay). Iterated as ClientConn*, in joining order.
#pragma once

#include <boost/intrusive/list.hpp>
#include <cstddef>
#include <iterator>

namespace pgcohere::pooler {

class ClientConn;

namespace client_list {
struct AllTag;
struct LoginTag;
struct PoolTag;
struct AwakeTag;
}  // namespace client_list
using AllClientsHook = boost::intrusive::list_base_hook<boost::intrusive::tag<client_list::AllTag>>;
using LoginClientsHook = boost::intrusive::list_base_hook<boost::intrusive::tag<client_list::LoginTag>>;
using PoolClientsHook = boost::intrusive::list_base_hook<boost::intrusive::tag<client_list::PoolTag>>;
using AwakeClientsHook = boost::intrusive::list_base_hook<boost::intrusive::tag<client_list::AwakeTag>>;

// Members are used where ClientConn is complete (the .cpp files that include client_conn.h).
template <typename Hook>
class ClientList {
  using List = boost::intrusive::list<ClientConn, boost::intrusive::base_hook<Hook>>;

 public:
  ClientList() = default;
  ClientList(const ClientList&) = delete;
  ClientList& operator=(const ClientList&) = delete;

  // Both do nothing when `c` is already in, or already out: a session that ends twice
  // leaves once.
  void insert(ClientConn& c) {
    if (!static_cast<Hook&>(c).is_linked()) list_.push_back(c);
  }
  void erase(ClientConn& c) {
    if (static_cast<Hook&>(c).is_linked()) list_.erase(list_.iterator_to(c));
  }
  std::size_t size() const { return list_.size(); }
  bool empty() const { return list_.empty(); }

  // The registry does not own its clients: iterating a const registry still yields
  // ClientConn* (as the std::set<ClientConn*> it replaces did).
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = ClientConn*;
    using difference_type = std::ptrdiff_t;
    using pointer = ClientConn* const*;
    using reference = ClientConn*;
    iterator() = default;
    explicit iterator(typename List::iterator it) : it_(it) {}
    ClientConn* operator*() const { return &*it_; }
    iterator& operator++() {
      ++it_;
      return *this;
    }
    iterator operator++(int) {
      iterator before = *this;
      ++it_;
      return before;
    }
    bool operator==(const iterator& other) const { return it_ == other.it_; }
    bool operator!=(const iterator& other) const { return it_ != other.it_; }

   private:
    typename List::iterator it_;
  };
  iterator begin() const { return iterator(list_.begin()); }
  iterator end() const { return iterator(list_.end()); }

 private:
  mutable List list_;
};

using AllClients = ClientList<AllClientsHook>;
using LoginClients = ClientList<LoginClientsHook>;  // in connection order: the oldest first
using PoolClients = ClientList<PoolClientsHook>;
using AwakeClients = ClientList<AwakeClientsHook>;

}  // namespace pgcohere::pooler
