// Query-cache tags and cache-policy entries (docs/cache.md), as the extension names them.
#include "core.hpp"

namespace pgcohere::core {

std::string cache_tbl_tag(std::uint32_t relid) { return "tbl:" + std::to_string(relid); }

std::string cache_all_tag(std::uint32_t relid) { return "all:" + std::to_string(relid); }

std::string cache_row_tag_prefix(std::uint32_t relid, std::string_view column) {
    std::string out = "row:" + std::to_string(relid) + ":";
    out.append(column);
    out.push_back('=');
    return out;
}

std::string cache_policy_text(std::uint32_t relid) { return std::to_string(relid); }

bool affects_query_cache(char kind, std::string_view text) {
    if (kind == kCachePolicy || kind == kResync) return true;
    if (kind != kTag) return false;
    return contract::is_query_cache_tag(text);
}

}  // namespace pgcohere::core
