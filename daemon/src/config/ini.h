// Tokenizer for PgBouncer-style ini files: sections, `key = value`, comments, %include.
// Pure: reads files, keeps every entry's origin (file:line) for precise errors.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace pgcohere::config {

// what() is "file:line: message" (or "file: message" when no line applies).
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct IniEntry {
  std::string section;  // lower-cased
  std::string key;      // as written (database and user names are case-sensitive)
  std::string value;    // trimmed, outer quotes kept: meaning depends on the key
  std::string file;
  int line = 0;
  std::string origin() const { return file + ":" + std::to_string(line); }
};

// Parses `text` as if read from `file`. %include paths are relative to the including
// file's directory unless absolute; include depth is bounded to stop cycles.
std::vector<IniEntry> parse_ini(const std::string& text, const std::string& file, int depth = 0);
std::vector<IniEntry> read_ini_file(const std::string& path, int depth = 0);

}  // namespace pgcohere::config
