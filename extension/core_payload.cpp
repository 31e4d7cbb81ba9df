// Payload encoding: header, entry lines, chunking under the NOTIFY limit, signature.
#include "core.hpp"

namespace pgcohere::core {

namespace {

std::string header(const PayloadParams& p, std::uint64_t seq, bool last) {
    std::string h = "pgc1 " + std::to_string(p.epoch) + " " + std::to_string(seq) + " " + std::to_string(p.commit_us);
    switch (p.pos) {
        case PayloadParams::Pos::none:
            break;
        case PayloadParams::Pos::seq:
            h += " " + std::to_string(seq);
            break;
        case PayloadParams::Pos::range:
            h += " " + std::to_string(last ? p.pos_end : p.pos_start);
            break;
    }
    h.push_back('\n');
    return h;
}

std::string sign(const PayloadParams& p, std::string body) {
    std::string message;
    message.reserve(p.dbname.size() + 1 + body.size());
    message.append(p.dbname);
    message.push_back('\n');
    message += body;
    body += "sig ";
    body += p.signer ? p.signer->hex(message) : hmac_sha256_hex(p.secret, message);
    return body;
}

}  // namespace

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
    return text.starts_with("tbl:") || text.starts_with("row:") || text.starts_with("all:");
}

std::vector<std::string> encode_payloads(const std::vector<std::string_view>& lines, const PayloadParams& p,
                                         const std::function<std::uint64_t()>& next_seq) {
    // Worst case header: "pgc1 " + 4 x 20 digits + 3 spaces + LF; signature line "sig " + 64.
    constexpr std::size_t kHeaderMax = 5 + 4 * 20 + 3 + 1;
    constexpr std::size_t kSigLen = 4 + 64;
    const std::size_t budget = p.max_payload - kHeaderMax - kSigLen;

    std::vector<std::vector<std::string_view>> chunks(1);
    std::size_t used = 0;
    static const std::string oversize = "r oversize-entry";
    for (std::string_view line : lines) {
        if (line.size() + 1 > budget) line = oversize;
        if (used + line.size() + 1 > budget) {
            chunks.emplace_back();
            used = 0;
        }
        chunks.back().push_back(line);
        used += line.size() + 1;
    }
    std::vector<std::string> out;
    if (lines.empty() && !p.emit_empty) return out;
    out.reserve(chunks.size());
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        const auto& chunk = chunks[i];
        std::string body = header(p, next_seq(), i + 1 == chunks.size());
        for (std::string_view line : chunk) {
            body.append(line);
            body.push_back('\n');
        }
        out.push_back(sign(p, std::move(body)));
    }
    return out;
}

}  // namespace pgcohere::core
