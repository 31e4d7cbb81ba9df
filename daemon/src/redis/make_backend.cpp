// Backend construction from the [redis] section (see make_backend.h).
#include "redis/make_backend.h"

#include <stdexcept>

#include "redis/cluster_backend.h"
#include "redis/url.h"

namespace pgcohere::redis {

namespace {
std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}
}  // namespace

std::shared_ptr<Backend> make_backend(boost::asio::io_context& io, const config::RedisSettings& r) {
  Timeouts timeouts{ms(r.connect_timeout), ms(r.command_timeout)};
  if (!r.cluster_nodes.empty()) {
    std::vector<Endpoint> seeds;
    for (const auto& node : r.cluster_nodes) {
      std::string error;
      auto ep = parse_url(node.rfind("redis://", 0) == 0 ? node : "redis://" + node, &error);
      if (!ep) throw std::runtime_error("[redis] cluster_nodes: " + node + ": " + error);
      seeds.push_back(*ep);
    }
    return std::make_shared<ClusterBackend>(io, std::move(seeds), timeouts);
  }
  std::string error;
  auto ep = parse_url(r.url, &error);
  if (!ep) throw std::runtime_error("[redis] url: " + error);
  return std::make_shared<SingleBackend>(io, ep->host, ep->port, ep->db, timeouts);
}

}  // namespace pgcohere::redis
