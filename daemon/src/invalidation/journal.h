// The purge journal: every accepted purge is written to a memory-mapped file
// (Boost.Interprocess) before it goes to Redis and released when Redis has done it, so
// purges pending while Redis is down or slow survive a daemon crash or restart and are
// replayed at start. The file is a bounded ring; when it is full the caller falls back to a
// resync, and the overflow is remembered in the file.
#pragma once

#include <boost/interprocess/file_mapping.hpp>
#include <boost/interprocess/mapped_region.hpp>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "invalidation/purger.h"

namespace pgcohere::invalidation {

struct JournalRecord {
  std::uint64_t id = 0;
  std::string database;
  PurgeJob job;
};

class Journal {
 public:
  // Opens `path` (created with `capacity` bytes of ring when absent or unusable). Records
  // left by a previous run are kept for pending(). Throws std::runtime_error on I/O errors.
  Journal(const std::string& path, std::size_t capacity);
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends a record; nullopt when it does not fit (the overflow flag is then set).
  std::optional<std::uint64_t> append(const std::string& database, const PurgeJob& job);
  // Redis has done record `id`: its space is reclaimed once every older record is done too.
  void complete(std::uint64_t id);
  // Records not yet completed, oldest first (after a restart: what the last run left).
  std::vector<JournalRecord> pending() const;

  // Forgets every record (the caller covers them with a resync).
  void clear();
  bool overflowed() const;
  void clear_overflow();
  std::size_t depth() const { return order_.size(); }
  std::size_t used_bytes() const;
  std::size_t capacity() const;

  // Record encoding (exposed for tests).
  static std::string encode(const std::string& database, const PurgeJob& job);
  static std::optional<JournalRecord> decode(std::string_view bytes);

 private:
  struct Header;
  struct Entry {
    std::uint64_t id;
    std::uint64_t offset;  // of the record header within the ring
    std::uint64_t size;    // bytes the record takes, with padding or a wrap skip
    bool done;
  };
  Header* header() const;
  unsigned char* ring() const;
  void load();
  void reclaim();

  boost::interprocess::file_mapping file_;
  boost::interprocess::mapped_region region_;
  std::deque<Entry> order_;  // records between head and tail, oldest first
};

}  // namespace pgcohere::invalidation
