// The auth_hba_file parser and matcher (see hba.h).
#include "auth/hba.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace pgcohere::auth {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

struct Item {
  std::string text;
  bool quoted = false;
};
using Field = std::vector<Item>;

class LineError {
 public:
  explicit LineError(std::string m) : message(std::move(m)) {}
  std::string message;
};

// One line (without its newline) into fields; a field is a comma-separated list of items.
std::vector<Field> split_fields(std::string_view line) {
  std::vector<Field> fields;
  std::size_t pos = 0;
  auto at_end = [&] { return pos >= line.size() || line[pos] == '#'; };
  for (;;) {
    while (pos < line.size() && is_blank(line[pos])) ++pos;
    if (at_end()) break;
    Field field;
    for (;;) {
      Item item;
      while (pos < line.size() && !is_blank(line[pos]) && line[pos] != ',' && line[pos] != '#') {
        if (line[pos] == '"') {
          item.quoted = true;
          std::size_t close = line.find('"', pos + 1);
          if (close == std::string_view::npos) throw LineError("unterminated quoted string");
          item.text.append(line.substr(pos + 1, close - pos - 1));
          pos = close + 1;
          continue;
        }
        item.text += line[pos++];
      }
      if (item.text.empty() && !item.quoted) throw LineError("empty element in a comma-separated list");
      field.push_back(std::move(item));
      if (pos < line.size() && line[pos] == ',') {
        ++pos;
        while (pos < line.size() && is_blank(line[pos])) ++pos;
        if (at_end()) throw LineError("a comma-separated list ends with a comma");
        continue;
      }
      break;
    }
    fields.push_back(std::move(field));
  }
  return fields;
}

bool keyword(const Item& item, std::string_view word) { return !item.quoted && item.text == word; }

// Names listed in an @file: blank- or comma-separated, `#` comments, quotes allowed.
void add_names_from_file(const Item& item, const HbaReadFile& read_file, std::vector<std::string>& out) {
  std::string path = item.text.substr(1);
  if (path.empty()) throw LineError("'@' must be followed by a file name");
  std::optional<std::string> text = read_file ? read_file(path) : std::nullopt;
  if (!text) throw LineError("cannot read the name list file \"" + path + "\"");
  std::size_t start = 0;
  while (start <= text->size()) {
    std::size_t end = text->find('\n', start);
    if (end == std::string::npos) end = text->size();
    std::string_view line = std::string_view(*text).substr(start, end - start);
    start = end + 1;
    std::vector<Field> fields;
    try {
      fields = split_fields(line);
    } catch (const LineError& e) {
      throw LineError("in \"" + path + "\": " + e.message);
    }
    for (auto& field : fields)
      for (auto& name : field) {
        if (!name.quoted && !name.text.empty() && name.text[0] == '@')
          throw LineError("\"" + path + "\" includes another file (" + name.text + "), which is not supported");
        out.push_back(name.text);
      }
    if (end == text->size()) break;
  }
}

HbaNames database_field(const Field& field, const HbaReadFile& read_file) {
  HbaNames out;
  for (const Item& item : field) {
    if (keyword(item, "all")) out.all = true;
    else if (keyword(item, "sameuser")) out.sameuser = true;
    else if (keyword(item, "samerole") || keyword(item, "samegroup") || keyword(item, "replication"))
      throw LineError("database keyword \"" + item.text + "\" is not supported (all, sameuser, names, @file)");
    else if (!item.quoted && item.text[0] == '@') add_names_from_file(item, read_file, out.names);
    else out.names.push_back(item.text);
  }
  return out;
}

HbaNames user_field(const Field& field, const HbaReadFile& read_file) {
  HbaNames out;
  for (const Item& item : field) {
    if (keyword(item, "all")) out.all = true;
    else if (!item.quoted && item.text[0] == '+')
      throw LineError("group membership (\"" + item.text + "\") is not supported (all, names, @file)");
    else if (!item.quoted && item.text[0] == '@') add_names_from_file(item, read_file, out.names);
    else out.names.push_back(item.text);
  }
  return out;
}

// Parses a numeric IPv4 or IPv6 address into 16 bytes (IPv4 in the first 4).
bool parse_ip(const std::string& text, bool& v6, std::array<unsigned char, 16>& bytes) {
  bytes.fill(0);
  if (inet_pton(AF_INET, text.c_str(), bytes.data()) == 1) {
    v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), bytes.data()) == 1) {
    v6 = true;
    return true;
  }
  return false;
}

std::array<unsigned char, 16> prefix_mask(int bits) {
  std::array<unsigned char, 16> mask{};
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8)
    mask[i] = bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
  return mask;
}

const Item& single(const Field& field, const char* what) {
  if (field.size() != 1) throw LineError(std::string("the ") + what + " field takes one value, not a list");
  return field[0];
}

// The address field at fields[i] (and maybe its mask at fields[i + 1]); advances i.
HbaAddress address_field(const std::vector<Field>& fields, std::size_t& i) {
  HbaAddress out;
  const Item& item = single(fields[i++], "address");
  if (keyword(item, "all")) {
    out.all = true;
    return out;
  }
  if (keyword(item, "samehost") || keyword(item, "samenet"))
    throw LineError("address keyword \"" + item.text + "\" is not supported (all, IPv4 or IPv6 addresses)");
  std::string text = item.text;
  std::size_t slash = text.find('/');
  if (slash != std::string::npos) {
    std::string bits_text = text.substr(slash + 1);
    text = text.substr(0, slash);
    if (!parse_ip(text, out.v6, out.addr))
      throw LineError("invalid IP address \"" + text + "\" (host names are not supported)");
    int max_bits = out.v6 ? 128 : 32;
    int bits = -1;
    if (!bits_text.empty() && bits_text.size() <= 3 &&
        std::all_of(bits_text.begin(), bits_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
      bits = std::stoi(bits_text);
    if (bits < 0 || bits > max_bits)
      throw LineError("invalid CIDR mask in address \"" + item.text + "\" (0 to " + std::to_string(max_bits) + ")");
    out.mask = prefix_mask(bits);
  } else {
    if (!parse_ip(text, out.v6, out.addr))
      throw LineError("invalid IP address \"" + text +
                      "\": host names and domain suffixes are not supported, write an address with a mask");
    if (i >= fields.size()) throw LineError("IP address \"" + text + "\" needs a mask (a /length or a mask field)");
    const Item& mask_item = single(fields[i++], "IP mask");
    bool mask_v6 = false;
    if (!parse_ip(mask_item.text, mask_v6, out.mask) || mask_v6 != out.v6)
      throw LineError("invalid IP mask \"" + mask_item.text + "\" for address \"" + text + "\"");
  }
  for (int k = 0; k < 16; ++k) out.addr[k] &= out.mask[k];
  return out;
}

HbaMethod method_field(const Item& item) {
  static const std::pair<std::string_view, HbaMethod> kMethods[] = {
      {"trust", HbaMethod::trust},       {"reject", HbaMethod::reject},     {"md5", HbaMethod::md5},
      {"scram-sha-256", HbaMethod::scram_sha_256}, {"password", HbaMethod::password}, {"peer", HbaMethod::peer}};
  for (auto& [name, m] : kMethods)
    if (keyword(item, name)) return m;
  throw LineError("authentication method \"" + item.text +
                  "\" is not supported (trust, reject, md5, scram-sha-256, password, peer)");
}

HbaRule parse_rule(const std::vector<Field>& fields, const HbaReadFile& read_file) {
  HbaRule rule;
  const Item& type = single(fields[0], "connection type");
  if (keyword(type, "local")) rule.type = HbaConnType::local;
  else if (keyword(type, "host")) rule.type = HbaConnType::host;
  else if (keyword(type, "hostssl")) rule.type = HbaConnType::hostssl;
  else if (keyword(type, "hostnossl")) rule.type = HbaConnType::hostnossl;
  else
    throw LineError("connection type \"" + type.text + "\" is not supported (local, host, hostssl, hostnossl)");
  bool local = rule.type == HbaConnType::local;
  std::size_t needed = local ? 4 : 5;
  if (fields.size() < needed)
    throw LineError(std::string("too few fields: expected ") +
                    (local ? "local DATABASE USER METHOD" : "TYPE DATABASE USER ADDRESS METHOD"));
  rule.databases = database_field(fields[1], read_file);
  rule.users = user_field(fields[2], read_file);
  std::size_t i = 3;
  if (!local) rule.address = address_field(fields, i);
  if (i >= fields.size()) throw LineError("missing the authentication method");
  rule.method = method_field(single(fields[i++], "authentication method"));
  if (i < fields.size())
    throw LineError("authentication options are not supported (\"" + fields[i][0].text + "\")");
  if (rule.method == HbaMethod::peer && !local)
    throw LineError("peer authentication is only supported on local (Unix socket) connections");
  return rule;
}

bool names_match(const HbaNames& n, const std::string& value) {
  return n.all || std::find(n.names.begin(), n.names.end(), value) != n.names.end();
}

bool address_matches(const HbaAddress& a, const std::string& text) {
  if (a.all) return true;
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};
  if (!parse_ip(text, v6, bytes)) return false;
  // An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d) is an IPv4 client.
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (v6 && std::equal(kMapped, kMapped + 12, bytes.begin())) {
    std::copy(bytes.begin() + 12, bytes.end(), bytes.begin());
    std::fill(bytes.begin() + 4, bytes.end(), 0);
    v6 = false;
  }
  if (v6 != a.v6) return false;
  for (int k = 0; k < 16; ++k)
    if ((bytes[k] & a.mask[k]) != a.addr[k]) return false;
  return true;
}

}  // namespace

const char* to_string(HbaMethod m) {
  switch (m) {
    case HbaMethod::trust: return "trust";
    case HbaMethod::reject: return "reject";
    case HbaMethod::md5: return "md5";
    case HbaMethod::scram_sha_256: return "scram-sha-256";
    case HbaMethod::password: return "password";
    case HbaMethod::peer: return "peer";
  }
  return "reject";
}

std::string_view auth_type_for(HbaMethod m) {
  switch (m) {
    case HbaMethod::trust: return "trust";
    case HbaMethod::md5: return "md5";
    case HbaMethod::scram_sha_256: return "scram-sha-256";
    case HbaMethod::password: return "plain";
    case HbaMethod::reject:
    case HbaMethod::peer: return "";
  }
  return "";
}

HbaRules parse_hba(std::string_view text, std::string_view filename, const HbaReadFile& read_file) {
  HbaRules out;
  out.file = std::string(filename);
  int lineno = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    ++lineno;
    start = end + 1;
    try {
      if (line.find('\0') != std::string_view::npos) throw LineError("NUL byte in line");
      std::vector<Field> fields = split_fields(line);
      if (!fields.empty()) {
        HbaRule rule = parse_rule(fields, read_file);
        rule.line = lineno;
        out.rules.push_back(std::move(rule));
      }
    } catch (const LineError& e) {
      throw HbaError(std::string(filename) + ":" + std::to_string(lineno) + ": " + e.message);
    }
    if (end == text.size()) break;
  }
  return out;
}

HbaRules load_hba(const std::string& path) {
  auto read = [](const std::string& p) -> std::optional<std::string> {
    std::ifstream in(p, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) return std::nullopt;
    return buf.str();
  };
  std::optional<std::string> text = read(path);
  if (!text) throw HbaError(path + ":0: cannot read auth_hba_file");
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  return parse_hba(*text, path, [&](const std::string& name) {
    return read(!name.empty() && name[0] == '/' ? name : dir + "/" + name);
  });
}

const HbaRule* match_hba(const HbaRules& rules, const HbaConnection& conn) {
  for (const HbaRule& r : rules.rules) {
    switch (r.type) {
      case HbaConnType::local:
        if (!conn.local) continue;
        break;
      case HbaConnType::host:
        if (conn.local) continue;
        break;
      case HbaConnType::hostssl:
        if (conn.local || !conn.tls) continue;
        break;
      case HbaConnType::hostnossl:
        if (conn.local || conn.tls) continue;
        break;
    }
    if (!(r.databases.sameuser && conn.database == conn.user) && !names_match(r.databases, conn.database)) continue;
    if (!names_match(r.users, conn.user)) continue;
    if (!conn.local && !address_matches(r.address, conn.address)) continue;
    return &r;
  }
  return nullptr;
}

}  // namespace pgcohere::auth
