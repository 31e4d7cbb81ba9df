// Tests of the /metrics HTTP endpoint against a real loopback socket.
#include <utility>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "metrics/registry.h"
#include "metrics/metrics_http.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.counter("scrape_test_total", "Test counter.", {{"k", "v"}}).inc(5);
    server_ = std::make_shared<pgcohere::metrics::MetricsHttpServer>(
        io_, [this] { return registry_.render(); });
    server_->start("127.0.0.1", 0);
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    asio::post(io_, [this] { server_->stop(); });
    thread_.join();
  }

  http::response<http::string_body> get(beast::tcp_stream& stream, http::verb verb,
                                        const std::string& target, bool keep_alive = true) {
    http::request<http::empty_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(keep_alive);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    if (verb == http::verb::head) parser.skip(true);
    http::read(stream, buffer, parser);
    return parser.release();
  }

  beast::tcp_stream connect() {
    beast::tcp_stream stream(client_io_);
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    return stream;
  }

  pgcohere::metrics::Registry registry_;
  asio::io_context io_;
  asio::io_context client_io_;
  std::shared_ptr<pgcohere::metrics::MetricsHttpServer> server_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST_F(MetricsHttpTest, ServesMetricsWithPrometheusContentType) {
  ASSERT_NE(port_, 0);
  auto stream = connect();
  auto res = get(stream, http::verb::get, "/metrics");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(res.body().find("pgcohere_scrape_test_total{k=\"v\"} 5\n"), std::string::npos);
}

TEST_F(MetricsHttpTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto stream = connect();
  for (int i = 0; i < 3; ++i) {
    auto res = get(stream, http::verb::get, "/metrics?x=1");
    EXPECT_EQ(res.result(), http::status::ok);
  }
  auto res = get(stream, http::verb::head, "/metrics");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_TRUE(res.body().empty());
}

TEST_F(MetricsHttpTest, OtherPathsAre404AndOtherMethods405) {
  auto stream = connect();
  EXPECT_EQ(get(stream, http::verb::get, "/").result(), http::status::not_found);
  EXPECT_EQ(get(stream, http::verb::get, "/metricsx").result(), http::status::not_found);
  EXPECT_EQ(get(stream, http::verb::delete_, "/metrics").result(),
            http::status::method_not_allowed);
}

TEST_F(MetricsHttpTest, GarbageClosesOnlyThatConnection) {
  {
    auto bad = connect();
    std::string junk = "NOT HTTP AT ALL\r\n\r\n";
    asio::write(bad.socket(), asio::buffer(junk));
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(bad, buffer, res, ec);
    EXPECT_TRUE(ec);  // closed without an answer
  }
  auto good = connect();
  EXPECT_EQ(get(good, http::verb::get, "/metrics").result(), http::status::ok);
}

TEST(MetricsHttp, BindFailureThrows) {
  asio::io_context io;
  auto a = std::make_shared<pgcohere::metrics::MetricsHttpServer>(io, [] { return std::string(); });
  a->start("127.0.0.1", 0);
  auto b = std::make_shared<pgcohere::metrics::MetricsHttpServer>(io, [] { return std::string(); });
  EXPECT_THROW(b->start("127.0.0.1", a->port()), boost::system::system_error);
  a->stop();
  EXPECT_FALSE(a->running());
  EXPECT_EQ(a->port(), 0);
}

TEST(MetricsService, OffWhenPortIsZeroAndFollowsReload) {
  asio::io_context io;
  pgcohere::config::Config cfg;
  cfg.daemon.metrics_addr = "127.0.0.1";
  cfg.daemon.metrics_port = 0;
  pgcohere::metrics::MetricsService svc(io, cfg);
  svc.start();
  EXPECT_EQ(svc.port(), 0);

  // Find a free port, then move the service onto it by reload.
  auto probe = std::make_shared<pgcohere::metrics::MetricsHttpServer>(io, [] { return std::string(); });
  probe->start("127.0.0.1", 0);
  std::uint16_t free_port = probe->port();
  probe->stop();
  cfg.daemon.metrics_port = free_port;
  svc.reload(cfg);
  EXPECT_EQ(svc.port(), free_port);

  // A port that is taken: the service keeps serving where it was.
  auto squatter = std::make_shared<pgcohere::metrics::MetricsHttpServer>(io, [] { return std::string(); });
  squatter->start("127.0.0.1", 0);
  cfg.daemon.metrics_port = squatter->port();
  svc.reload(cfg);
  EXPECT_EQ(svc.port(), free_port);

  cfg.daemon.metrics_port = 0;
  svc.reload(cfg);
  EXPECT_EQ(svc.port(), 0);
  svc.stop();
}

TEST(MetricsHttp, AcceptsHostNamesAndStar) {
  asio::io_context io;
  auto a = std::make_shared<pgcohere::metrics::MetricsHttpServer>(io, [] { return std::string(); });
  a->start("localhost", 0);
  EXPECT_NE(a->port(), 0);
  a->stop();
  auto b = std::make_shared<pgcohere::metrics::MetricsHttpServer>(io, [] { return std::string(); });
  b->start("*", 0);
  EXPECT_NE(b->port(), 0);
  b->stop();
  auto c = std::make_shared<pgcohere::metrics::MetricsHttpServer>(io, [] { return std::string(); });
  EXPECT_ANY_THROW(c->start("no-such-host.invalid", 0));
}

TEST_F(MetricsHttpTest, IdleConnectionFloodIsCapped) {
  std::vector<beast::tcp_stream> idle;
  for (int i = 0; i < 80; ++i) idle.push_back(connect());
  // Past the cap, new connections are closed at once; the ones inside it still work.
  auto& first = idle.front();
  EXPECT_EQ(get(first, http::verb::get, "/metrics").result(), http::status::ok);
  int refused = 0;
  for (auto& s : idle) {
    boost::system::error_code ec;
    http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
    http::write(s, req, ec);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    if (!ec) http::read(s, buffer, res, ec);
    if (ec) ++refused;
  }
  EXPECT_GE(refused, 80 - 64);
  idle.clear();
  // Once they are gone, scrapes work again.
  bool ok = false;
  for (int attempt = 0; attempt < 200 && !ok; ++attempt) {
    auto s = connect();
    boost::system::error_code ec;
    http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
    http::write(s, req, ec);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    if (!ec) http::read(s, buffer, res, ec);
    ok = !ec && res.result() == http::status::ok;
    if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(ok);
}

TEST(MetricsHttp, StartRefusesAServerNotOwnedByASharedPtr) {
  asio::io_context io;
  pgcohere::metrics::MetricsHttpServer loose(io, [] { return std::string(); });
  EXPECT_THROW(loose.start("127.0.0.1", 0), std::logic_error);
  EXPECT_FALSE(loose.running());
}

TEST(MetricsHttp, AServerStartedAgainAfterStopServesAndStopEndsAllItsCoroutines) {
  asio::io_context io;
  auto server = std::make_shared<pgcohere::metrics::MetricsHttpServer>(io, [] { return std::string("x"); });
  server->start("127.0.0.1", 0);
  server->stop();
  server->start("127.0.0.1", 0);
  std::uint16_t port = server->port();
  ASSERT_NE(port, 0);
  std::thread thread([&io] { io.run(); });
  asio::io_context client_io;
  beast::tcp_stream stream(client_io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  EXPECT_EQ(res.body(), "x");
  // The keep-alive connection stays open on our side: stop() must end it too.
  asio::post(io, [&server] { server->stop(); });
  thread.join();  // io.run() returns only once no coroutine of either start() is left
  EXPECT_EQ(server.use_count(), 1);
}
