// Key families: the pattern that pgcohere.invalidate()'s warning and hints name for a key
// (whether a family covers a key is contract/glob.h's glob_covers).
#include "core.hpp"

namespace pgcohere::core {

std::string key_family(std::string_view text, bool pattern) {
    if (pattern) return std::string(text);
    // Segments split at ':'. The family keeps the leading segments up to the first one
    // (after the first) that holds a digit, or up to the last one: user:profile:42:avatar
    // -> user:profile:*, feed:global -> feed:*. A key without ':' is its own family.
    std::vector<std::string_view> segments;
    std::size_t start = 0;
    while (true) {
        std::size_t colon = text.find(':', start);
        segments.push_back(
            text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
        if (colon == std::string_view::npos) break;
        start = colon + 1;
    }
    if (segments.size() == 1) return glob_escape(text);
    std::size_t keep = segments.size() - 1;
    for (std::size_t k = 1; k < segments.size(); ++k) {
        bool digit = false;
        for (char c : segments[k]) digit = digit || (c >= '0' && c <= '9');
        if (digit) {
            keep = k;
            break;
        }
    }
    std::string family;
    for (std::size_t k = 0; k < keep; ++k) family += glob_escape(segments[k]) + ":";
    return family + "*";
}

}  // namespace pgcohere::core
