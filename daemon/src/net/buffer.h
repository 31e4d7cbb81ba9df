// A read buffer for one socket direction: bytes are read at the tail and consumed from
// the head; it compacts and grows only when a message does not fit. An idle connection
// can hand its memory to a BufferPool and take a block again when data arrives, so that
// thousands of idle clients hold no read buffers (PgBouncer does the same).
#pragma once

#include <cstring>
#include <string_view>
#include <vector>

namespace pgcohere::net {

// Spare blocks of one size, for one event loop (not thread-safe).
class BufferPool {
 public:
  BufferPool(size_t block_size, size_t max_spare) : block_size_(block_size), max_spare_(max_spare) {}
  std::vector<char> take() {
    if (spare_.empty()) return std::vector<char>(block_size_);
    std::vector<char> b = std::move(spare_.back());
    spare_.pop_back();
    return b;
  }
  void give(std::vector<char>&& b) {
    if (b.size() == block_size_ && spare_.size() < max_spare_) spare_.push_back(std::move(b));
  }
  size_t block_size() const { return block_size_; }

 private:
  size_t block_size_, max_spare_;
  std::vector<std::vector<char>> spare_;
};

class ReadBuffer {
 public:
  explicit ReadBuffer(size_t capacity = 16 * 1024) : data_(capacity) {}
  explicit ReadBuffer(std::vector<char>&& block) : data_(std::move(block)) {}

  bool empty() const { return start_ == end_; }
  bool detached() const { return data_.empty(); }
  // Gives an empty buffer's memory to `pool` (no-op if bytes are pending).
  void detach(BufferPool& pool) {
    if (!empty() || data_.empty()) return;
    pool.give(std::move(data_));
    data_ = {};
    start_ = end_ = 0;
  }
  void attach(BufferPool& pool) {
    if (data_.empty()) data_ = pool.take();
  }

  std::string_view unconsumed() const { return {data_.data() + start_, end_ - start_}; }
  void consume(size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }
  // Space to read into; makes room for at least `want` unconsumed bytes in total.
  char* tail(size_t want = 0) {
    size_t have = end_ - start_;
    if (start_ > 0 && (data_.size() - end_ < 4096 || have + 4096 > data_.size() - start_)) {
      std::memmove(data_.data(), data_.data() + start_, have);
      start_ = 0;
      end_ = have;
    }
    if (want > data_.size()) data_.resize(want);
    if (data_.size() - end_ < 1024) data_.resize(data_.size() * 2);
    return data_.data() + end_;
  }
  size_t tail_size() const { return data_.size() - end_; }
  void produced(size_t n) { end_ += n; }
  size_t capacity() const { return data_.size(); }
  // Gives memory back after a huge message went through.
  void shrink(size_t to) {
    if (end_ == start_ && data_.size() > to) {
      data_.resize(to);
      data_.shrink_to_fit();
      start_ = end_ = 0;
    }
  }

 private:
  std::vector<char> data_;
  size_t start_ = 0, end_ = 0;
};

}  // namespace pgcohere::net
