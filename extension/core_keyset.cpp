// Per-transaction entry set with one frame per subtransaction level.
#include "core.hpp"

namespace pgcohere::core {

bool KeySet::add(int level, char kind, std::string_view text) {
    if (level < 1) level = 1;
    std::string entry;
    entry.reserve(text.size() + 1);
    entry.push_back(kind);
    entry.append(text);
    const std::size_t depth = std::min<std::size_t>(frames_.size(), static_cast<std::size_t>(level));
    for (std::size_t i = 0; i < depth; ++i)
        if (frames_[i].count(entry)) return false;
    if (frames_.size() < static_cast<std::size_t>(level)) frames_.resize(level);
    frames_[level - 1].insert(std::move(entry));
    ++total_;
    return true;
}

void KeySet::commit_sub(int level) {
    if (level < 2 || frames_.size() < static_cast<std::size_t>(level)) return;
    auto& parent = frames_[level - 2];
    for (std::size_t i = level - 1; i < frames_.size(); ++i) {
        parent.merge(frames_[i]);
        // Entries left behind were duplicates of the parent: drop them from the count.
        total_ -= frames_[i].size();
    }
    frames_.resize(level - 1);
}

void KeySet::abort_sub(int level) {
    if (level < 1 || frames_.size() < static_cast<std::size_t>(level)) return;
    for (std::size_t i = level - 1; i < frames_.size(); ++i) total_ -= frames_[i].size();
    frames_.resize(level - 1);
}

void KeySet::clear() {
    frames_.clear();
    frames_.shrink_to_fit();
    total_ = 0;
}

}  // namespace pgcohere::core
