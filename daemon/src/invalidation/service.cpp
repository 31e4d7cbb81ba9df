// Wiring of the invalidation path; the backlog bound falls back to resync, never to loss.
#include "invalidation/service.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "contract/payload.h"
#include "invalidation/cluster_prefix_index.h"
#include "redis/make_backend.h"
#include "redis/url.h"
#include "util/log.h"

namespace pgcohere::invalidation {

namespace {
std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

ConsumerSettings make_settings(const config::Config& c) {
  ConsumerSettings s;
  s.channel = c.invalidation.channel;
  s.secret = read_secret_file(c.invalidation.secret_file);
  s.cache_namespace = c.cache.key_namespace;
  s.resync_patterns = c.invalidation.resync_patterns;
  s.gap_grace = ms(c.invalidation.gap_grace);
  s.reconnect_min = ms(c.invalidation.reconnect_min);
  s.reconnect_max = ms(c.invalidation.reconnect_max);
  s.redelete_delay = ms(c.invalidation.redelete_delay);
  return s;
}
}  // namespace

std::string read_secret_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("[invalidation] secret_file " + path + ": cannot read");
  std::ostringstream content;
  content << in.rdbuf();
  std::string secret = contract::trim_secret(content.str());
  if (secret.empty()) throw std::runtime_error("[invalidation] secret_file " + path + ": empty");
  return secret;
}

bool InvalidationService::wanted(const config::Config& c) {
  if (!c.invalidation.enabled || (c.redis.url.empty() && c.redis.cluster_nodes.empty())) return false;
  for (const auto& db : c.databases)
    if (db.name != "*") return true;
  return false;
}

InvalidationService::InvalidationService(boost::asio::io_context& io, const config::Config& c)
    : io_(io),
      settings_(make_settings(c)),
      max_backlog_(static_cast<std::size_t>(std::max(1, c.invalidation.journal_max_entries))),
      backlog_timer_(io) {
  backend_ = redis::make_backend(io, c.redis);
  settings_.applied_backend = backend_.get();
  PurgeOptions options;
  options.max_in_flight = static_cast<std::size_t>(std::max(1, c.invalidation.max_inflight));
  options.cache_namespace = c.cache.key_namespace;
  if (c.invalidation.pattern_index) {
    PrefixIndexOptions o;
    o.command_timeout = ms(c.redis.command_timeout);
    o.trim_interval = ms(c.invalidation.pattern_index_trim);
    if (!c.redis.cluster_nodes.empty()) {
      index_ = std::make_shared<ClusterPrefixIndex>(io, backend_, o);
    } else {
      auto ep = redis::parse_url(c.redis.url);
      index_ = std::make_shared<PrefixIndex>(io, ep->host, ep->port, ep->db, o);
    }
    settings_.on_key_families = [this](const std::string& db, const std::vector<std::string>& templates) {
      index_->set_families(db, templates);
    };
  }
  purger_ = std::make_shared<Purger>(io, *backend_, options, index_.get());
  if (!c.invalidation.journal_file.empty()) {
    std::size_t capacity = std::max<std::size_t>(64 * 1024, max_backlog_ * 256);
    journal_ = std::make_unique<Journal>(c.invalidation.journal_file, capacity);
    settings_.journal = journal_.get();
  }
  backend_->on_ready([this] { on_redis_ready(); });
  for (const auto& db : c.databases) {
    if (db.name == "*") continue;
    consumers_.push_back(std::make_shared<DatabaseConsumer>(io, *purger_, settings_, db.name,
                                                            listen_conn_params(db.name, db.params, c.daemon)));
  }
  collector_ = metrics::registry().add_collector([this](metrics::Exposition& e) {
    const auto& k = purger_->counters();
    e.counter("purged_keys_total", "Exact keys sent to Redis in UNLINK", {}, static_cast<double>(k.keys_sent));
    e.counter("purged_keys_removed_total", "Exact keys that existed when UNLINKed", {},
              static_cast<double>(k.keys_removed));
    e.counter("purge_keys_coalesced_total", "Key purges merged into one already queued", {},
              static_cast<double>(k.keys_coalesced));
    e.counter("purged_patterns_total", "Patterns purged (SCAN + UNLINK)", {}, static_cast<double>(k.patterns_purged));
    e.counter("purged_pattern_keys_total", "Keys removed by pattern purges", {},
              static_cast<double>(k.pattern_keys_removed));
    e.counter("purge_scan_passes_total", "SCAN passes (each shared by every pending pattern)", {},
              static_cast<double>(k.scan_passes));
    e.counter("purge_index_passes_total", "Pattern passes answered by the prefix index", {},
              static_cast<double>(k.index_passes));
    e.counter("purge_index_patterns_total", "Patterns purged through the prefix index", {},
              static_cast<double>(k.index_patterns));
    e.counter("purge_index_keys_visited_total", "Index entries visited by pattern purges", {},
              static_cast<double>(k.index_keys_visited));
    e.counter("purge_cache_tags_total", "Query-cache tags given a new version (their entries removed)", {},
              static_cast<double>(k.tags_invalidated));
    e.counter("purge_cache_entries_removed_total", "Cache entries those tags removed", {},
              static_cast<double>(k.tagged_entries_removed));
    e.gauge("pattern_index_ready", "1 while pattern purges use the prefix index", {},
            index_ && index_->ready() ? 1 : 0);
    e.gauge("pattern_index_families", "Key families (template shapes) the prefix index keeps sets for", {},
            index_ ? static_cast<double>(index_->families()) : 0);
    {
      PrefixIndexCounters x = index_ ? index_->counters() : PrefixIndexCounters{};
      e.counter("pattern_index_builds_total", "SCAN passes that (re)built the prefix index", {},
                static_cast<double>(x.builds));
      e.counter("pattern_index_entries_added_total", "Keys added to index sets", {},
                static_cast<double>(x.entries_added));
      e.counter("pattern_index_entries_trimmed_total", "Index entries of vanished keys removed by the trim", {},
                static_cast<double>(x.entries_trimmed));
      e.counter("pattern_index_trims_total", "Trim passes over the index sets", {}, static_cast<double>(x.trims));
      e.counter("pattern_index_unavailable_total",
                "Checks that found Redis sending no keyspace notifications (pattern purges scan)", {},
                static_cast<double>(x.unavailable));
    }
    e.counter("redis_errors_total", "Failed Redis commands of the purger", {}, static_cast<double>(k.redis_errors));
    e.gauge("purge_backlog", "Keys and patterns waiting for Redis", {},
            static_cast<double>(purger_->queued_keys() + purger_->pending_patterns()));
    e.gauge("journal_depth", "Purges recorded in the journal and not yet done by Redis", {},
            journal_ ? static_cast<double>(journal_->depth()) : 0);
    e.counter("redis_cluster_redirects_total", "MOVED/ASK redirects followed", {{"kind", "moved"}},
              static_cast<double>(backend_->moved_redirects()));
    e.counter("redis_cluster_redirects_total", "MOVED/ASK redirects followed", {{"kind", "ask"}},
              static_cast<double>(backend_->ask_redirects()));
    e.gauge("redis_up", "1 while the purger's Redis connection is up", {}, backend_->ready() ? 1 : 0);
    if (const auto& m = *redis_memory_) {
      e.gauge("redis_used_memory_bytes", "Redis INFO used_memory (the purger's Redis, polled every 5 s)", {},
              static_cast<double>(m->used));
      e.gauge("redis_maxmemory_bytes", "Redis INFO maxmemory (0: no limit)", {}, static_cast<double>(m->maximum));
    }
  });
}

InvalidationService::~InvalidationService() {
  if (collector_) metrics::registry().remove_collector(collector_);
  // A running consumer's coroutine keeps the consumer alive until it ends; stop() ends it,
  // so that none outlives the purger and settings it refers to.
  for (auto& c : consumers_) c->stop();
}

void InvalidationService::replay_journal() {
  if (!journal_) return;
  if (journal_->overflowed()) {
    // The last run could not journal everything; the connect resync of every database
    // that follows covers the rules' keys.
    PGC_LOG_WARN << "invalidation: the journal overflowed in an earlier run; relying on the start-up resync";
    journal_->clear_overflow();
  }
  auto records = journal_->pending();
  if (records.empty()) return;
  PGC_LOG_INFO << "invalidation: replaying " << records.size() << " journaled purge(s) from an earlier run";
  for (auto& rec : records) {
    Journal* journal = journal_.get();
    purger_->submit(std::move(rec.job), [journal, id = rec.id] { journal->complete(id); });
  }
}

void InvalidationService::start() {
  replay_journal();
  PGC_LOG_INFO << "invalidation: purging in Redis at " << backend_->describe();
  backend_->start();
  if (index_) index_->start();
  for (auto& c : consumers_) c->start();
  check_backlog();
}

void InvalidationService::stop() {
  backlog_timer_.cancel();
  for (auto& c : consumers_) c->stop();
  backend_->stop();
  if (index_) index_->stop();
}

void InvalidationService::reload(const config::Config& c) {
  // The secret can rotate without a restart (the extension reads its file on SIGHUP too);
  // so can the resync patterns and where a database is (its LISTEN connection follows);
  // the list of databases, Redis and the channel are read at start.
  try {
    std::string secret = read_secret_file(c.invalidation.secret_file);
    if (secret != settings_.secret) {
      PGC_LOG_INFO << "invalidation: signing secret reloaded";
    }
    settings_.secret = std::move(secret);
  } catch (const std::exception& e) {
    PGC_LOG_ERROR << "invalidation: keeping the old secret: " << e.what();
  }
  settings_.redelete_delay = ms(c.invalidation.redelete_delay);
  settings_.resync_patterns = c.invalidation.resync_patterns;
  for (auto& consumer : consumers_) {
    const config::ConnEntry* entry = nullptr;
    for (const auto& db : c.databases)
      if (db.name == consumer->name()) entry = &db;
    if (!entry) {
      PGC_LOG_WARN << "invalidation [" << consumer->name()
                   << "]: no longer in [databases]; its LISTEN connection stays until a restart";
      continue;
    }
    consumer->retarget(listen_conn_params(entry->name, entry->params, c.daemon));
  }
  for (const auto& db : c.databases) {
    bool known = db.name == "*";
    for (auto& consumer : consumers_) known = known || consumer->name() == db.name;
    if (!known) {
      PGC_LOG_WARN << "invalidation [" << db.name << "]: new in [databases]; listened to after a restart";
    }
  }
}

void InvalidationService::on_redis_ready() {
  if (!backend_->ready()) return;
  if (overflowed_) {
    overflowed_ = false;
    PGC_LOG_WARN << "invalidation: Redis is back after the backlog overflowed; resyncing every database";
    for (auto& c : consumers_) c->request_resync("backlog overflow");
  }
  purger_->resume();
  for (auto& c : consumers_) c->rewrite_applied();
}

void InvalidationService::check_backlog() {
  // Past the bound, queued work is dropped and replaced by one resync per database when
  // Redis answers again: coarser, never lost.
  if (purger_->queued_keys() + purger_->pending_patterns() > max_backlog_) {
    PGC_LOG_ERROR << "invalidation: purge backlog above " << max_backlog_
                  << " while Redis is unavailable; dropping it for a resync";
    purger_->drop_all();
    if (journal_) journal_->clear();
    overflowed_ = true;
    on_redis_ready();
  }
  // Every 5 s, and every tick until a first answer (a scrape right after start sees it).
  if (++backlog_checks_ >= 50 || !*redis_memory_) {
    backlog_checks_ = 0;
    poll_redis_memory();
  }
  backlog_timer_.expires_after(std::chrono::milliseconds(100));
  backlog_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) check_backlog();
  });
}

void InvalidationService::poll_redis_memory() {
  if (!backend_->ready()) return;
  // keyed() routes by argv[1]: on a cluster this reads one primary, which the alert
  // treats as representative.
  backend_->keyed({"INFO", "memory"}, 1, [target = std::weak_ptr(redis_memory_)](redis::Reply r) {
    auto memory = target.lock();
    if (!memory || r.is_error()) return;
    if (auto m = parse_redis_memory(r.str)) *memory = m;
  });
}

}  // namespace pgcohere::invalidation
