// Redis glob patterns as the daemon purges them: does a rule's or a declared family's
// pattern cover a key (or a pattern) that pgcohere.invalidate() publishes?
#include <algorithm>

#include "core.hpp"

namespace pgcohere::core {

namespace {

// One character against a class body (what sits between '[' and ']', after '^'), as
// Redis's stringmatchlen reads it: '\' escapes, "a-z" is a range (either order).
bool class_matches(std::string_view body, char c) {
    for (std::size_t i = 0; i < body.size(); ++i) {
        if (body[i] == '\\' && i + 1 < body.size()) {
            if (body[++i] == c) return true;
        } else if (i + 2 < body.size() && body[i + 1] == '-') {
            unsigned char a = body[i], b = body[i + 2], x = c;
            if (a > b) std::swap(a, b);
            if (x >= a && x <= b) return true;
            i += 2;
        } else if (body[i] == c) {
            return true;
        }
    }
    return false;
}

}  // namespace

Glob parse_glob(std::string_view pattern) {
    Glob g;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        char c = pattern[i];
        Glob::Token t;
        switch (c) {
            case '*':
                if (!g.tokens.empty() && g.tokens.back().kind == Glob::Token::Many) continue;
                t.kind = Glob::Token::Many;
                break;
            case '?':
                t.kind = Glob::Token::One;
                break;
            case '[': {
                t.kind = Glob::Token::Class;
                std::size_t j = i + 1;
                if (j < pattern.size() && pattern[j] == '^') {
                    t.negate = true;
                    ++j;
                }
                std::size_t start = j;
                while (j < pattern.size() && pattern[j] != ']')
                    j += (pattern[j] == '\\' && j + 1 < pattern.size()) ? 2 : 1;
                // An unterminated class runs to the end of the pattern (as in Redis).
                t.set = std::string(pattern.substr(start, std::min(j, pattern.size()) - start));
                i = j;
                break;
            }
            case '\\':
                if (i + 1 < pattern.size()) c = pattern[++i];
                [[fallthrough]];
            default:
                t.kind = Glob::Token::Char;
                t.c = c;
        }
        g.tokens.push_back(std::move(t));
    }
    for (const auto& t : g.tokens) {
        if (t.kind != Glob::Token::Char) break;
        g.prefix.push_back(t.c);
    }
    return g;
}

Glob literal_glob(std::string_view key) {
    Glob g;
    g.tokens.reserve(key.size());
    for (char c : key) {
        Glob::Token t;
        t.c = c;
        g.tokens.push_back(std::move(t));
    }
    g.prefix = std::string(key);
    return g;
}

bool glob_covers(const Glob& cover, const Glob& subject) {
    if (subject.prefix.compare(0, cover.prefix.size(), cover.prefix) != 0) return false;  // cheap common case
    const auto& f = cover.tokens;
    const auto& s = subject.tokens;
    const std::size_t m = s.size();
    // next[j]: cover's tokens after i cover subject's tokens from j on. Bottom-up over i.
    std::vector<char> next(m + 1, 0), row(m + 1, 0);
    next[m] = 1;
    for (std::size_t i = f.size(); i-- > 0;) {
        const Glob::Token& ft = f[i];
        row[m] = ft.kind == Glob::Token::Many && next[m];
        for (std::size_t j = m; j-- > 0;) {
            const Glob::Token& st = s[j];
            switch (ft.kind) {
                case Glob::Token::Many:  // any run of the subject's tokens, its own '*' included
                    row[j] = next[j] || row[j + 1];
                    break;
                case Glob::Token::One:  // any one character: a literal, '?' or a class
                    row[j] = st.kind != Glob::Token::Many && next[j + 1];
                    break;
                case Glob::Token::Char:
                    row[j] = st.kind == Glob::Token::Char && st.c == ft.c && next[j + 1];
                    break;
                case Glob::Token::Class:  // only a literal is known to fall inside a class
                    row[j] = st.kind == Glob::Token::Char && class_matches(ft.set, st.c) != ft.negate && next[j + 1];
                    break;
            }
        }
        std::swap(next, row);
    }
    return next[0] != 0;
}

bool glob_covers_key(const Glob& cover, std::string_view key) {
    if (key.compare(0, cover.prefix.size(), cover.prefix) != 0) return false;
    // Greedy match with backtracking to the last '*' (enough for single-character tokens).
    const auto& f = cover.tokens;
    std::size_t i = 0, j = 0, star = std::string_view::npos, resume = 0;
    while (j < key.size()) {
        if (i < f.size()) {
            const Glob::Token& t = f[i];
            if (t.kind == Glob::Token::Many) {
                star = i++;
                resume = j;
                continue;
            }
            bool one = t.kind == Glob::Token::One || (t.kind == Glob::Token::Char && t.c == key[j]) ||
                       (t.kind == Glob::Token::Class && class_matches(t.set, key[j]) != t.negate);
            if (one) {
                ++i;
                ++j;
                continue;
            }
        }
        if (star == std::string_view::npos) return false;
        i = star + 1;
        j = ++resume;
    }
    while (i < f.size() && f[i].kind == Glob::Token::Many) ++i;
    return i == f.size();
}

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
