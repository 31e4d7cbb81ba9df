// Wiring: builds the services from the configuration, runs the loop, handles signals.
#include "app/app.h"

#include <algorithm>
#include <csignal>

#include "cache/service.h"
#include "invalidation/service.h"
#include "metrics/metrics_http.h"
#include "pooler/pooler.h"
#include "util/log.h"
#include "util/systemd.h"

namespace pgcohere::app {

App::App(config::Config config)
    : stop_signals_(io_, SIGTERM),
      reload_signal_(io_, SIGHUP),
      drain_signal_(io_, SIGINT),
      config_(std::move(config)) {
  // Services, in start order. Each later issue adds its line here.
  services_.push_back(std::make_unique<util::systemd::WatchdogService>(io_));
  services_.push_back(std::make_unique<metrics::MetricsService>(io_, config_));
  invalidation::InvalidationService* invalidation = nullptr;
  if (invalidation::InvalidationService::wanted(config_)) {
    auto service = std::make_unique<invalidation::InvalidationService>(io_, config_);
    invalidation = service.get();
    services_.push_back(std::move(service));
  }
  cache::CacheService* cache = nullptr;
  if (config_.cache.enabled) {
    auto service = std::make_shared<cache::CacheService>(io_, config_);
    cache = service.get();
    services_.push_back(std::move(service));
    if (invalidation)
      invalidation->on_cache_policy_change([cache](const std::string& db, std::uint32_t) { cache->policy_changed(db); });
  }
  auto pooler = std::make_unique<pooler::Pooler>(io_, config_, *this);
  pooler->set_cache(cache);
  pooler_ = pooler.get();
  services_.push_back(std::move(pooler));
}

App::~App() = default;

int App::run() {
  for (auto& ignored : config_.ignored_keys) PGC_LOG_WARN << ignored << ": not supported by pgcohered, ignored";
  for (auto& s : services_) {
    PGC_LOG_INFO << "starting " << s->name();
    s->start();
  }
  wait_for_stop();
  wait_for_reload();
  wait_for_drain();
  PGC_LOG_INFO << "pgcohered " << PGCOHERE_VERSION << " ready (config " << config_.path << ")";
  util::systemd::notify_ready();
  io_.run();
  PGC_LOG_INFO << "pgcohered stopped";
  return 0;
}

void App::wait_for_stop() {
  stop_signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    PGC_LOG_INFO << "got signal " << signo << ", shutting down";
    shutdown();
  });
}

// SIGINT: SHUTDOWN WAIT_FOR_CLIENTS (a rolling restart: a new process on the same port
// takes the new connections); a second SIGINT stops at once.
void App::wait_for_drain() {
  drain_signal_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec || stopping_) return;
    if (pooler_->draining()) {
      PGC_LOG_INFO << "got SIGINT again, shutting down now";
      shutdown();
      return;
    }
    PGC_LOG_INFO << "got SIGINT: no new connections, shutting down once the clients have left";
    pooler_->drain();
    wait_for_drain();
  });
}

void App::wait_for_reload() {
  reload_signal_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec || stopping_) return;
    PGC_LOG_INFO << "got SIGHUP, reloading " << config_.path;
    reload();
    wait_for_reload();
  });
}

std::string App::reload() {
  util::systemd::notify_reloading();
  config::Config next;
  try {
    next = config::load_config(config_.path);
  } catch (const config::ConfigError& e) {
    PGC_LOG_ERROR << "reload refused, keeping the running configuration: " << e.what();
    util::systemd::notify_ready();
    return e.what();
  }
  std::string changes = describe_changes(config_, next);
  PGC_LOG_INFO << "reloaded " << config_.path << (changes.empty() ? ": no changes" : ": " + changes);
  config_ = std::move(next);
  for (auto& s : services_) s->reload(config_);
  util::systemd::notify_ready();
  return "";
}

std::string App::set(const std::string& key, const std::string& value) {
  config::Config next = config_;
  try {
    config::set_daemon_setting(next, key, value);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  std::string changes = describe_changes(config_, next);
  PGC_LOG_INFO << "admin console SET: " << (changes.empty() ? "no changes" : changes);
  config_ = std::move(next);
  for (auto& s : services_) s->reload(config_);
  return "";
}

void App::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  util::systemd::notify_stopping();
  for (auto it = services_.rbegin(); it != services_.rend(); ++it) (*it)->stop();
  stop_signals_.cancel();
  reload_signal_.cancel();
  drain_signal_.cancel();
}

std::string describe_changes(const config::Config& before, const config::Config& after) {
  std::string out;
  auto add = [&](const std::string& what) { out += (out.empty() ? "" : "; ") + what; };
  auto old_settings = config::list_settings(before);
  auto new_settings = config::list_settings(after);
  for (size_t i = 0; i < old_settings.size(); ++i) {
    auto& o = old_settings[i];
    auto& n = new_settings[i];
    if (o.value == n.value) continue;
    bool secret = o.secret || n.secret;  // say that it changed, never what to
    add("[" + o.section + "] " + o.key + (secret ? " changed" : ": '" + o.value + "' -> '" + n.value + "'"));
  }
  auto compare_entries = [&](const char* section, const std::vector<config::ConnEntry>& a,
                             const std::vector<config::ConnEntry>& b) {
    for (auto& e : a) {
      auto it = std::find_if(b.begin(), b.end(), [&](auto& x) { return x.name == e.name; });
      if (it == b.end()) add(std::string("[") + section + "] " + e.name + " removed");
      else if (it->params != e.params) add(std::string("[") + section + "] " + e.name + " changed");
    }
    for (auto& e : b)
      if (std::none_of(a.begin(), a.end(), [&](auto& x) { return x.name == e.name; }))
        add(std::string("[") + section + "] " + e.name + " added");
  };
  compare_entries("databases", before.databases, after.databases);
  compare_entries("users", before.users, after.users);
  compare_entries("peers", before.peers, after.peers);
  return out;
}

}  // namespace pgcohere::app
