// Ring layout: Header, then `capacity` bytes of records. A record is a u32 length, a u64
// id, then `length` bytes of text. A u32 0xFFFFFFFF marks "skip to the ring's start".
#include "invalidation/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "contract/payload.h"
#include "util/log.h"

namespace pgcohere::invalidation {

namespace bip = boost::interprocess;

namespace {
constexpr std::uint64_t kMagic = 0x4c4e524a43475031ull;  // "1PGCJRNL"
constexpr std::uint32_t kVersion = 1;
constexpr std::uint32_t kWrap = 0xFFFFFFFFu;
constexpr std::size_t kRecordHeader = sizeof(std::uint32_t) + sizeof(std::uint64_t);
}  // namespace

struct Journal::Header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t overflow;
  std::uint64_t capacity;
  std::uint64_t head;  // offset of the oldest live record
  std::uint64_t tail;  // offset where the next record goes
  std::uint64_t used;  // bytes between head and tail (0: empty)
  std::uint64_t next_id;
};

Journal::Header* Journal::header() const { return static_cast<Header*>(region_.get_address()); }
unsigned char* Journal::ring() const { return static_cast<unsigned char*>(region_.get_address()) + sizeof(Header); }
bool Journal::overflowed() const { return header()->overflow != 0; }
void Journal::clear_overflow() { header()->overflow = 0; }
std::size_t Journal::used_bytes() const { return header()->used; }
std::size_t Journal::capacity() const { return header()->capacity; }

Journal::Journal(const std::string& path, std::size_t capacity) {
  std::size_t size = sizeof(Header) + capacity;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
  if (fd < 0) throw std::runtime_error("journal " + path + ": " + std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  bool fresh = static_cast<std::size_t>(st.st_size) < sizeof(Header);
  if (!fresh) {
    Header h{};
    if (::pread(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h) || h.magic != kMagic ||
        h.version != kVersion || sizeof(Header) + h.capacity != static_cast<std::uint64_t>(st.st_size)) {
      PGC_LOG_WARN << "journal " << path << ": unusable (format or size changed); starting a new one";
      fresh = true;
    } else if (h.capacity != capacity) {
      size = static_cast<std::size_t>(st.st_size);  // keep its records; the new size applies when empty
    }
  }
  if (fresh && ::ftruncate(fd, 0) != 0) { /* ftruncate below reports */ }
  if (static_cast<std::size_t>(st.st_size) != size || fresh) {
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      ::close(fd);
      throw std::runtime_error("journal " + path + ": " + std::strerror(errno));
    }
  }
  ::close(fd);
  file_ = bip::file_mapping(path.c_str(), bip::read_write);
  region_ = bip::mapped_region(file_, bip::read_write);
  if (fresh) {
    Header* h = header();
    std::memset(h, 0, sizeof *h);
    h->magic = kMagic;
    h->version = kVersion;
    h->capacity = capacity;
    h->next_id = 1;
  }
  load();
}

void Journal::load() {
  Header* h = header();
  std::uint64_t off = h->head, left = h->used;
  while (left > 0) {
    std::uint32_t len;
    if (off + sizeof len > h->capacity) {  // no room even for a marker: implicit wrap
      std::uint64_t skip = h->capacity - off;
      left -= std::min(left, skip);
      off = 0;
      if (!order_.empty()) order_.back().size += skip;
      continue;
    }
    std::memcpy(&len, ring() + off, sizeof len);
    if (len == kWrap) {
      std::uint64_t skip = h->capacity - off;
      left -= std::min(left, skip);
      off = 0;
      if (!order_.empty()) order_.back().size += skip;
      continue;
    }
    std::uint64_t id;
    std::memcpy(&id, ring() + off + sizeof len, sizeof id);
    std::uint64_t size = kRecordHeader + len;
    if (size > left || off + size > h->capacity) {
      PGC_LOG_ERROR << "journal: corrupt record at offset " << off << "; dropping the rest (resync covers it)";
      h->overflow = 1;
      h->used -= left;
      h->tail = off;
      break;
    }
    order_.push_back({id, off, size, false});
    off += size;
    left -= size;
  }
}

std::vector<JournalRecord> Journal::pending() const {
  std::vector<JournalRecord> out;
  for (const auto& e : order_) {
    if (e.done) continue;
    std::uint32_t len;
    std::memcpy(&len, ring() + e.offset, sizeof len);
    auto rec = decode(std::string_view(reinterpret_cast<const char*>(ring() + e.offset + kRecordHeader), len));
    if (!rec) continue;
    rec->id = e.id;
    out.push_back(std::move(*rec));
  }
  return out;
}

std::optional<std::uint64_t> Journal::append(const std::string& database, const PurgeJob& job) {
  Header* h = header();
  std::string text = encode(database, job);
  std::uint64_t need = kRecordHeader + text.size();
  std::uint64_t off = h->tail;
  std::uint64_t skip = 0;
  if (off + need > h->capacity) {  // does not fit before the end: wrap
    skip = h->capacity - off;
    off = 0;
  }
  if (h->used + skip + need > h->capacity || need > h->capacity) {
    h->overflow = 1;
    return std::nullopt;
  }
  if (skip > 0 && skip >= sizeof(std::uint32_t)) std::memcpy(ring() + h->tail, &kWrap, sizeof kWrap);
  std::uint64_t id = h->next_id++;
  auto len = static_cast<std::uint32_t>(text.size());
  std::memcpy(ring() + off, &len, sizeof len);
  std::memcpy(ring() + off + sizeof len, &id, sizeof id);
  std::memcpy(ring() + off + kRecordHeader, text.data(), text.size());
  if (skip > 0 && !order_.empty()) order_.back().size += skip;
  // Bytes first, then the tail: a crash in between loses only this unacknowledged record.
  h->used += skip + need;
  h->tail = off + need;
  if (skip > 0 && order_.empty()) {
    h->head = 0;
    h->used -= skip;
  }
  order_.push_back({id, off, need, false});
  return id;
}

void Journal::complete(std::uint64_t id) {
  // Ids are consecutive in the ring's order, so the record's place is id - front id.
  if (order_.empty() || id < order_.front().id) return;
  std::uint64_t at = id - order_.front().id;
  if (at < order_.size() && order_[at].id == id) {
    order_[at].done = true;
  } else {
    for (auto& e : order_)
      if (e.id == id) e.done = true;
  }
  reclaim();
}

void Journal::clear() {
  order_.clear();
  Header* h = header();
  h->used = 0;
  h->head = h->tail = 0;
}

void Journal::reclaim() {
  Header* h = header();
  while (!order_.empty() && order_.front().done) {
    h->used -= std::min<std::uint64_t>(h->used, order_.front().size);
    order_.pop_front();
    h->head = order_.empty() ? h->tail : order_.front().offset;
  }
  if (order_.empty()) {
    h->used = 0;
    h->head = h->tail = 0;
  }
}

std::string Journal::encode(const std::string& database, const PurgeJob& job) {
  std::string out = contract::escape_text(database) + "\n";
  for (const auto& k : job.keys) out += "k " + contract::escape_text(k) + "\n";
  for (const auto& p : job.patterns) out += "p " + contract::escape_text(p) + "\n";
  for (const auto& t : job.tags) out += "t " + contract::escape_text(t) + "\n";
  return out;
}

std::optional<JournalRecord> Journal::decode(std::string_view bytes) {
  JournalRecord rec;
  std::size_t pos = 0;
  bool first = true;
  while (pos < bytes.size()) {
    std::size_t lf = bytes.find('\n', pos);
    if (lf == std::string_view::npos) return std::nullopt;
    std::string_view line = bytes.substr(pos, lf - pos);
    pos = lf + 1;
    if (first) {
      auto db = contract::unescape_text(line);
      if (!db) return std::nullopt;
      rec.database = std::move(*db);
      first = false;
      continue;
    }
    if (line.size() < 2 || line[1] != ' ') return std::nullopt;
    auto text = contract::unescape_text(line.substr(2));
    if (!text) return std::nullopt;
    switch (line[0]) {
      case 'k': rec.job.keys.push_back(std::move(*text)); break;
      case 'p': rec.job.patterns.push_back(std::move(*text)); break;
      case 't': rec.job.tags.push_back(std::move(*text)); break;
      default: return std::nullopt;
    }
  }
  if (first) return std::nullopt;
  return rec;
}

}  // namespace pgcohere::invalidation
