// Pure C++ core of pgcohere: templates, key families, cache tags, the per-transaction key
// set. No PostgreSQL header is included here or in core_*.cpp. The wire contract with the
// daemon (payload encoding and signing, glob escaping and matching) is common/contract/,
// compiled into both builds; its names are used here as core's own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "contract/glob.h"
#include "contract/hmac.h"
#include "contract/payload.h"

namespace pgcohere::core {

// Entry kinds of the wire format (docs/protocol.md), as the letters KeySet stores.
inline constexpr char kKey = static_cast<char>(contract::EntryKind::key);
inline constexpr char kPattern = static_cast<char>(contract::EntryKind::pattern);
inline constexpr char kTag = static_cast<char>(contract::EntryKind::tag);
inline constexpr char kResync = static_cast<char>(contract::EntryKind::resync);
inline constexpr char kCachePolicy = static_cast<char>(contract::EntryKind::cache_policy);  // the relation's OID

using contract::encode_payloads;
using contract::entry_line;
using contract::glob_covers;
using contract::glob_covers_key;
using contract::glob_escape;
using contract::hmac_sha256_hex;
using contract::HmacSha256;
using contract::is_glob_meta;
using contract::kMaxPayload;
using contract::literal_glob;
using contract::parse_glob;
using contract::PayloadParams;
using contract::trim_secret;
using Glob = contract::Glob;

struct TemplateError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A parsed key template such as "msg:history:{conversation_id}:*".
struct Template {
    struct Segment {
        bool placeholder;  // true: `text` is a column name
        std::string text;
    };
    std::string source;
    std::vector<Segment> segments;
    std::vector<std::string> columns;  // placeholder names, in order of appearance (may repeat)
    bool pattern = false;              // literal text holds a glob metacharacter
    std::string coarse;                // placeholders widened to '*'
    char coarse_kind = kKey;           // kPattern as soon as there is a placeholder or a metacharacter
};

// Throws TemplateError with a message naming the problem.
Template parse_template(std::string_view source);

// The family of a key that pgcohere.invalidate() publishes, as a glob for messages and
// hints: its leading ':'-separated segments up to the first later one that holds a
// digit (or up to the last one), then '*'. A pattern is its own family.
std::string key_family(std::string_view text, bool pattern);

// Renders `t`; values[i] is the text of t.columns[i], or nullptr for SQL NULL or a
// column that no longer exists: that placeholder is widened to '*' (never a lost
// invalidation), which turns the result into a pattern.
struct Rendered {
    char kind;
    std::string text;
};
Rendered render(const Template& t, const std::vector<const char*>& values);

// Query-cache tags (docs/cache.md), published as kTag entries: every row change of a
// cache-enabled table publishes tbl:<oid>; each `by` column adds row:<oid>:<column>=<value>
// for its OLD and NEW value; TRUNCATE, DDL and policy changes publish tbl:<oid> and all:<oid>.
std::string cache_tbl_tag(std::uint32_t relid);
std::string cache_all_tag(std::uint32_t relid);
std::string cache_row_tag_prefix(std::uint32_t relid, std::string_view column);  // row:<oid>:<column>=
// Whether an entry is one the query cache's entries depend on: its tags (tbl:, row:, all:),
// a policy change, a resync. Keys, patterns and a watched table's own `table:` tag are not.
bool affects_query_cache(char kind, std::string_view text);
// The text of a kCachePolicy entry: "the cache policy of relid changed, reload the catalog".
std::string cache_policy_text(std::uint32_t relid);

// The entries of one transaction, deduplicated, with one frame per subtransaction
// nesting level so that a rolled-back savepoint drops exactly its own entries.
// Entries are stored as "kind + text" (unescaped).
class KeySet {
  public:
    // Adds at nesting level `level` (1 = top). Returns false if already present.
    bool add(int level, char kind, std::string_view text);
    void commit_sub(int level);  // merge level into level-1
    void abort_sub(int level);   // drop level and deeper
    void clear();
    std::size_t size() const { return total_; }
    bool empty() const { return total_ == 0; }
    // Calls f(kind, text) for every entry.
    template <class F>
    void for_each(F&& f) const {
        for (const auto& frame : frames_)
            for (const auto& e : frame) f(e[0], std::string_view(e).substr(1));
    }

  private:
    std::vector<std::unordered_set<std::string>> frames_;
    std::size_t total_ = 0;
};

}  // namespace pgcohere::core
