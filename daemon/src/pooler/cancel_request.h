// One CancelRequest sent on its own connection, to PostgreSQL (a client's cancel) or to a
// peered pgcohered (a cancel that landed on the wrong process).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>

namespace pgcohere::pooler {

// Sends one CancelRequest and waits until the other side closes that connection, which
// PostgreSQL does once it has signalled the backend (a peer: once it has handled it).
// False when the request was sent but its fate is unknown (no close within `limit`).
boost::asio::awaitable<bool> send_cancel_request(boost::asio::io_context& io,
                                                 boost::asio::generic::stream_protocol::endpoint ep,
                                                 std::int32_t pid, std::int32_t key,
                                                 std::chrono::steady_clock::duration limit);

}  // namespace pgcohere::pooler
