// Recognizes, in the bytes a client has sent, a read the query cache may answer: one
// simple Query, or one extended-protocol batch [Parse ""] Bind [Describe portal] Execute
// Sync. Pure: bytes in, a description out; the messages stay in the buffer either way.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcohere::cache {

struct Request {
  enum class Protocol { simple, extended };
  Protocol protocol = Protocol::simple;
  std::string sql;
  // The message types of the batch ("Q", "PBDES", "BES", ...): the reply's shape depends
  // on them, so they are part of the key.
  std::string shape;
  std::string param_types;  // Parse's raw count + OIDs (of the named statement without Parse)
  std::vector<std::optional<std::string>> params;
  std::vector<int16_t> param_formats;  // one per parameter (0 text, 1 binary)
  std::vector<int16_t> result_formats;  // as the client sent them
  std::size_t consumed = 0;  // bytes of the whole batch at the start of the buffer
};

// The query text and parameter types of a client's named prepared statement.
struct NamedStatement {
  std::string_view query;
  std::string_view param_types;
};
using StatementLookup = std::function<std::optional<NamedStatement>(std::string_view name)>;

// nullopt when the leading messages are not exactly one such batch, are not all there
// yet, or are malformed (the normal path then handles and reports them).
std::optional<Request> recognize(std::string_view data, const StatementLookup& named);

}  // namespace pgcohere::cache
