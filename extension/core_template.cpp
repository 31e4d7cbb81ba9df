// Key templates: parsing, rendering from column values (glob escaping: contract/glob.h).
#include "core.hpp"

namespace pgcohere::core {

Template parse_template(std::string_view source) {
    Template t;
    t.source = std::string(source);
    if (source.empty()) throw TemplateError("empty key template");
    std::string literal;
    for (std::size_t i = 0; i < source.size(); ++i) {
        char c = source[i];
        if (c == '}') throw TemplateError("unmatched \"}\" in key template \"" + t.source + "\"");
        if (c != '{') {
            literal.push_back(c);
            if (is_glob_meta(c)) t.pattern = true;
            continue;
        }
        std::size_t end = source.find('}', i + 1);
        if (end == std::string_view::npos)
            throw TemplateError("unterminated placeholder in key template \"" + t.source + "\"");
        std::string_view name = source.substr(i + 1, end - i - 1);
        if (name.empty()) throw TemplateError("empty placeholder \"{}\" in key template \"" + t.source + "\"");
        if (name.find('{') != std::string_view::npos)
            throw TemplateError("nested \"{\" in key template \"" + t.source + "\"");
        if (!literal.empty()) t.segments.push_back({false, std::move(literal)});
        literal.clear();
        t.segments.push_back({true, std::string(name)});
        t.columns.emplace_back(name);
        i = end;
    }
    if (!literal.empty()) t.segments.push_back({false, std::move(literal)});
    for (const auto& s : t.segments) t.coarse += s.placeholder ? std::string("*") : s.text;
    t.coarse_kind = (t.pattern || !t.columns.empty()) ? kPattern : kKey;
    return t;
}

Rendered render(const Template& t, const std::vector<const char*>& values) {
    bool pattern = t.pattern;
    for (const char* v : values)
        if (v == nullptr) pattern = true;
    Rendered r{pattern ? kPattern : kKey, {}};
    r.text.reserve(t.source.size() + 16);
    std::size_t col = 0;
    for (const auto& s : t.segments) {
        if (!s.placeholder) {
            r.text += s.text;
            continue;
        }
        const char* v = col < values.size() ? values[col] : nullptr;
        ++col;
        if (v == nullptr)
            r.text.push_back('*');
        else if (pattern)
            r.text += glob_escape(v);
        else
            r.text += v;
    }
    return r;
}

}  // namespace pgcohere::core
