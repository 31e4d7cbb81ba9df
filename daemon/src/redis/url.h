// `redis://host:port/db` (the `[redis] url` setting), parsed.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgcohere::redis {

struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
};

// Accepts redis://host[:port][/db]; returns nullopt with `error` set otherwise.
std::optional<Endpoint> parse_url(std::string_view url, std::string* error = nullptr);

}  // namespace pgcohere::redis
