// A Redis reply copied out of hiredis, so it can outlive hiredis's callback.
#pragma once

#include <string>
#include <vector>

namespace pgcohere::redis {

struct Reply {
  enum class Type { string, array, integer, nil, status, error };
  Type type = Type::nil;
  std::string str;  // string, status, error (also "connection lost" when the link dropped)
  long long integer = 0;
  std::vector<Reply> elements;

  bool is_error() const { return type == Type::error; }
  static Reply make_error(std::string message) {
    Reply r;
    r.type = Type::error;
    r.str = std::move(message);
    return r;
  }
};

}  // namespace pgcohere::redis
