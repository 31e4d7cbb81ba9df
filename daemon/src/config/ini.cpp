// Ini tokenizer: the syntax PgBouncer accepts (';' and '#' comments, [section],
// key = value, %include FILE), with file:line on every entry and every error.
#include "config/ini.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace pgcohere::config {
namespace {

constexpr int kMaxIncludeDepth = 10;

std::string trim(const std::string& s) {
  auto begin = std::find_if_not(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
  auto end = std::find_if_not(s.rbegin(), s.rend(), [](unsigned char c) { return std::isspace(c); }).base();
  return begin < end ? std::string(begin, end) : std::string();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string directory_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash == 0 ? 1 : slash);
}

}  // namespace

std::vector<IniEntry> parse_ini(const std::string& text, const std::string& file, int depth) {
  std::vector<IniEntry> entries;
  std::istringstream in(text);
  std::string raw;
  std::string section;
  int line_no = 0;
  auto fail = [&](const std::string& message) {
    throw ConfigError(file + ":" + std::to_string(line_no) + ": " + message);
  };
  while (std::getline(in, raw)) {
    ++line_no;
    std::string line = trim(raw);
    if (line.empty() || line[0] == ';' || line[0] == '#') continue;
    if (line.rfind("%include", 0) == 0) {
      std::string target = trim(line.substr(8));
      if (target.empty()) fail("%include needs a file name");
      if (depth >= kMaxIncludeDepth) fail("%include nested too deeply (a cycle?)");
      if (target[0] != '/') target = directory_of(file) + "/" + target;
      auto included = read_ini_file(target, depth + 1);
      entries.insert(entries.end(), included.begin(), included.end());
      continue;
    }
    if (line[0] == '[') {
      if (line.back() != ']') fail("section header must end with ']': " + line);
      section = lower(trim(line.substr(1, line.size() - 2)));
      if (section.empty()) fail("empty section name");
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string::npos) fail("expected 'key = value', got: " + line);
    std::string key = trim(line.substr(0, eq));
    if (key.empty()) fail("missing key before '='");
    if (section.empty()) fail("'" + key + "' appears before any [section]");
    entries.push_back({section, key, trim(line.substr(eq + 1)), file, line_no});
  }
  return entries;
}

std::vector<IniEntry> read_ini_file(const std::string& path, int depth) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_ini(text.str(), path, depth);
}

}  // namespace pgcohere::config
