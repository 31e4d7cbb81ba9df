// Pure C++ core of pgcohere: templates, escaping, payload encoding, HMAC, the
// per-transaction key set. No PostgreSQL header is included here or in core_*.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace pgcohere::core {

// Entry kinds of the wire format (docs/protocol.md).
inline constexpr char kKey = 'k';
inline constexpr char kPattern = 'p';
inline constexpr char kTag = 't';
inline constexpr char kResync = 'r';
inline constexpr char kCachePolicy = 'c';  // text: the relation's OID in decimal

// NOTIFY refuses payloads of 8000 bytes or more (NOTIFY_PAYLOAD_MAX_LENGTH).
inline constexpr std::size_t kMaxPayload = 7999;

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

bool is_glob_meta(char c);
// Throws TemplateError with a message naming the problem.
Template parse_template(std::string_view source);
std::string glob_escape(std::string_view value);

// ---- glob patterns, read as Redis reads them (* ? [...] with ^ and ranges, \ escapes)
struct Glob {
    struct Token {
        enum Kind : unsigned char { Char, One, Many, Class } kind = Char;
        char c = 0;           // Char
        bool negate = false;  // Class: [^...]
        std::string set;      // Class: the body between the brackets
    };
    std::vector<Token> tokens;
    std::string prefix;  // the literal characters before the first other token
};
Glob parse_glob(std::string_view pattern);
Glob literal_glob(std::string_view key);  // an exact key: every character literal
// True if every key that `subject` matches is also matched by `cover`. Sound (never
// true for a subject that reaches outside the cover); a class in the subject is covered
// only by '?' or '*'.
bool glob_covers(const Glob& cover, const Glob& subject);
// The same for an exact key, without building a Glob for it.
bool glob_covers_key(const Glob& cover, std::string_view key);
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

// One entry line without its LF: kind, space, text with \ LF CR escaped.
std::string entry_line(char kind, std::string_view text);
std::string line_escape(std::string_view text);

// HMAC-SHA256 as 64 lowercase hex digits (OpenSSL).
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

// HMAC-SHA256 with one key, its inner and outer digest states computed once: signing a
// message then costs two state copies and the hash blocks of the message, not OpenSSL's
// per-call setup of HMAC() (algorithm lookup, contexts), which took about a sixth of the
// publisher's CPU per NOTIFY.
class HmacSha256 {
  public:
    explicit HmacSha256(std::string_view key);
    ~HmacSha256();
    HmacSha256(const HmacSha256&) = delete;
    HmacSha256& operator=(const HmacSha256&) = delete;
    std::string hex(std::string_view message) const;  // lower-case hex digest

  private:
    struct evp_md_ctx_st* inner_;  // EVP_MD_CTX after key ^ ipad
    struct evp_md_ctx_st* outer_;  // EVP_MD_CTX after key ^ opad
    struct evp_md_ctx_st* work_;
};

// Splits entry lines (each without LF) into signed payloads below kMaxPayload bytes.
// next_seq is called once per payload, in order. A line too long to fit any payload
// is replaced by a resync entry, so nothing is silently dropped.
struct PayloadParams {
    std::string_view dbname;
    std::string_view secret;
    const HmacSha256* signer = nullptr;  // the secret's prepared key, if the caller keeps one
    std::uint64_t epoch = 0;
    std::int64_t commit_us = 0;
    std::size_t max_payload = kMaxPayload;
    // The header's optional pos field (docs/protocol.md): the highest commit position a
    // payload covers, for read-your-writes. none: no field; seq: each payload's own seq
    // (direct mode, where a commit's position is its seq); range: the last payload carries
    // pos_end, the ones before it pos_start (preload mode: the ring bytes of the batch's
    // commits are covered only once its last chunk is out).
    enum class Pos { none, seq, range } pos = Pos::none;
    std::uint64_t pos_start = 0;
    std::uint64_t pos_end = 0;
    // No lines: still one payload without entries (a ring batch of markers only must
    // report its position).
    bool emit_empty = false;
};
std::vector<std::string> encode_payloads(const std::vector<std::string_view>& lines, const PayloadParams& params,
                                         const std::function<std::uint64_t()>& next_seq);

// Removes trailing whitespace (the secret file's content).
std::string rstrip(std::string s);

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
