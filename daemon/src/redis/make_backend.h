// The Redis backend a [redis] section describes: a Redis Cluster from cluster_nodes, else
// the one server of url. Each caller gets its own connections.
#pragma once

#include <boost/asio/io_context.hpp>

#include <memory>

#include "config/config.h"
#include "redis/backend.h"

namespace pgcohere::redis {

// Shared ownership: a cluster backend's replies and timers hold a weak_ptr to it.
// Throws std::runtime_error naming the bad setting.
std::shared_ptr<Backend> make_backend(boost::asio::io_context& io, const config::RedisSettings& settings);

}  // namespace pgcohere::redis
