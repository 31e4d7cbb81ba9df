// Runs an io_context in short slices until a condition holds or 10 s pass (tests that drive
// real sockets and wait for their completions). Returns whether the condition held.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>

namespace pgcohere::testing_support {

template <typename Done>
bool run_until(boost::asio::io_context& io, Done done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(10));
  }
  return done();
}

}  // namespace pgcohere::testing_support
