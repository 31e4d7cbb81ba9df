// The per-database consumer loop: connect, elect, LISTEN, resync, then apply payloads.
#include "invalidation/consumer.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cache/redis_layout.h"
#include "contract/glob.h"
#include "contract/payload.h"
#include "util/log.h"

namespace pgcohere::invalidation {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {
metrics::Labels db_label(const std::string& name) { return {{"database", name}}; }

metrics::Counter& rejected_counter(const std::string& database, const char* reason) {
  return metrics::registry().counter("invalidations_rejected_total",
                                     "Notifications ignored: bad signature, malformed, or replayed",
                                     {{"database", database}, {"reason", reason}});
}

std::uint64_t now_us() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}
}  // namespace

std::int64_t leader_lock_key(const std::string& channel) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a: stable across daemons and builds
  for (unsigned char c : "pgcohered:" + channel) h = (h ^ c) * 1099511628211ull;
  return static_cast<std::int64_t>(h);
}

DatabaseConsumer::DatabaseConsumer(asio::io_context& io, Purger& purger, const ConsumerSettings& settings,
                                   std::string name, std::map<std::string, std::string> conn_params)
    : io_(io),
      purger_(purger),
      settings_(settings),
      name_(std::move(name)),
      params_(std::move(conn_params)),
      conn_(io),
      tracker_(settings.gap_grace),
      backoff_timer_(io),
      received_(metrics::registry().counter("invalidations_received_total",
                                            "Notifications received on the invalidation channel",
                                            db_label(name_))),
      applied_(metrics::registry().counter("invalidations_applied_total",
                                           "Verified invalidations whose purge completed", db_label(name_))),
      forged_(rejected_counter(name_, "forged")),
      malformed_(rejected_counter(name_, "malformed")),
      replayed_(rejected_counter(name_, "replayed")),
      gaps_(metrics::registry().counter("invalidation_gaps_total",
                                        "Sequence gaps that outlived the grace period", db_label(name_))),
      leader_gauge_(metrics::registry().gauge("invalidation_leader",
                                              "1 while this daemon holds the purge leadership of the database",
                                              db_label(name_))),
      latency_(metrics::registry().histogram("invalidation_latency_ms",
                                             "Commit-to-purge latency of applied invalidations, milliseconds",
                                             metrics::round_buckets(0.1, 10000))),
      receive_latency_(metrics::registry().histogram(
          "invalidation_receive_latency_ms",
          "Commit to the daemon receiving the notification (extension + PostgreSQL share), milliseconds",
          metrics::round_buckets(0.1, 10000))) {}

void DatabaseConsumer::start() {
  stopping_ = false;
  asio::co_spawn(io_, [self = shared_from_this()]() { return self->run(); }, asio::detached);
}

void DatabaseConsumer::stop() {
  stopping_ = true;
  backoff_timer_.cancel();
  for (auto& t : redelete_timers_) t->cancel();
  conn_.close();
  set_leader(false);
}

void DatabaseConsumer::retarget(std::map<std::string, std::string> params) {
  if (params == params_) return;
  params_ = std::move(params);
  if (stopping_) return;
  PGC_LOG_INFO << "invalidation [" << name_ << "]: the database's connection settings changed; reconnecting";
  retargeted_ = true;
  // Ends whatever the session awaits (connect, query, wait): it returns false and run()
  // connects again; or run() is in its backoff, cut short here.
  conn_.close();
  backoff_timer_.cancel();
}

void DatabaseConsumer::request_resync(const std::string& reason) {
  if (resync_reason_.empty()) resync_reason_ = reason;
  conn_.wake();
}

void DatabaseConsumer::set_leader(bool leader) {
  leader_ = leader;
  leader_gauge_.set(leader ? 1 : 0);
}

awaitable<void> DatabaseConsumer::run() {
  auto backoff = settings_.reconnect_min;
  while (!stopping_) {
    auto started = Clock::now();
    co_await session();
    set_leader(false);
    conn_.close();
    if (stopping_) break;
    if (retargeted_) {  // not a failure: connect to the new target now
      retargeted_ = false;
      backoff = settings_.reconnect_min;
      continue;
    }
    // A session that lasted a while resets the backoff; a flapping one doubles it.
    if (Clock::now() - started > settings_.reconnect_max) backoff = settings_.reconnect_min;
    PGC_LOG_INFO << "invalidation [" << name_ << "]: reconnecting in " << backoff.count() << " ms";
    backoff_timer_.expires_after(backoff);
    boost::system::error_code ec;
    co_await backoff_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (retargeted_) {
      retargeted_ = false;
      backoff = settings_.reconnect_min;
      continue;
    }
    backoff = std::min(backoff * 2, settings_.reconnect_max);
  }
}

awaitable<bool> DatabaseConsumer::session() {
  std::string err = co_await conn_.connect(params_);
  if (!err.empty()) {
    PGC_LOG_WARN << "invalidation [" << name_ << "]: cannot connect: " << err;
    co_return false;
  }
  auto rows = co_await conn_.query("SELECT current_database()", &err);
  if (!rows || rows->empty()) {
    PGC_LOG_WARN << "invalidation [" << name_ << "]: " << err;
    co_return false;
  }
  dbname_ = (*rows)[0][0];

  // Leader election: the session that holds the lock purges; the others wait their turn.
  std::string lock_sql = "SELECT pg_try_advisory_lock(" + std::to_string(leader_lock_key(settings_.channel)) + ")";
  bool announced = false;
  for (;;) {
    rows = co_await conn_.query(lock_sql, &err);
    if (!rows || rows->empty()) {
      PGC_LOG_WARN << "invalidation [" << name_ << "]: " << err;
      co_return false;
    }
    if ((*rows)[0][0] == "t") break;
    if (!announced) {
      PGC_LOG_INFO << "invalidation [" << name_ << "]: another pgcohered purges this database; standing by";
      announced = true;
    }
    if (!co_await conn_.wait(Clock::now() + settings_.standby_poll, [](Notification) {})) co_return false;
    if (stopping_) co_return true;
  }
  set_leader(true);

  rows = co_await conn_.query("LISTEN " + quote_identifier(settings_.channel), &err);
  if (!rows) {
    PGC_LOG_WARN << "invalidation [" << name_ << "]: LISTEN failed: " << err;
    co_return false;
  }
  PGC_LOG_INFO << "invalidation [" << name_ << "]: listening on \"" << settings_.channel << "\" in database "
               << dbname_ << " (backend pid " << conn_.backend_pid() << ")";
  tracker_.reset_session();
  watermark_.new_session();
  // Whatever was committed while we were not listening is unknown: cover it. The LISTEN
  // above came first, so nothing committed after this point can be missed.
  resync_reason_.clear();
  if (!co_await resync("connect")) co_return false;

  // The purges of the notifications read together go to Redis together (Purger::hold).
  auto on_notify = [this](Notification n) {
    if (!holding_purger_) {
      purger_.hold();
      holding_purger_ = true;
    }
    handle(n);
  };
  auto batch_done = [this] {
    if (!holding_purger_) return;
    holding_purger_ = false;
    purger_.release_hold();
  };
  while (!stopping_) {
    if (!resync_reason_.empty()) {
      if (!co_await resync(resync_reason_)) co_return false;
      continue;
    }
    if (tracker_.gap_expired(Clock::now())) {
      gaps_.inc();
      PGC_LOG_WARN << "invalidation [" << name_ << "]: " << tracker_.missing()
                   << " invalidation(s) missing after the grace period";
      if (!co_await resync("gap")) co_return false;
      continue;
    }
    if (!co_await conn_.wait(tracker_.next_deadline(), on_notify, batch_done)) {
      if (!stopping_ && !retargeted_) {
        PGC_LOG_WARN << "invalidation [" << name_ << "]: LISTEN connection lost: " << conn_.error_message();
      }
      co_return false;
    }
  }
  co_return true;
}

awaitable<bool> DatabaseConsumer::resync(std::string reason) {
  std::string err, sqlstate;
  // coarse_patterns() also lists the rules' table tags; those are query-cache tags (their
  // entries live under the cache namespace, purged below), not key patterns. A declared
  // key family (pgcohere.declare_keys()) is a key pattern even if it is spelled like a tag.
  auto rows = co_await conn_.query(
      "SELECT p, EXISTS (SELECT 1 FROM pgcohere.rules r WHERE r.tag = p) AND NOT EXISTS (SELECT 1 FROM "
      "pgcohere.declared_keys d WHERE pgcohere.coarse_pattern(d.pattern) = p) FROM pgcohere.coarse_patterns() AS p",
      &err, &sqlstate);
  if (!rows && sqlstate == "42P01")  // no tables to tell tags apart (older schema): purge everything listed
    rows = co_await conn_.query("SELECT *, false FROM pgcohere.coarse_patterns()", &err, &sqlstate);
  PurgeJob job;
  if (!rows) {
    // 3F000: no pgcohere schema, 42883: no such function: the database has no rules.
    if (sqlstate != "3F000" && sqlstate != "42883") {
      PGC_LOG_WARN << "invalidation [" << name_ << "]: cannot read coarse patterns: " << err;
      co_return false;
    }
    PGC_LOG_DEBUG << "invalidation [" << name_ << "]: no coarse patterns (" << err << ")";
  } else {
    for (auto& row : *rows)
      if (row.size() == 2 && !row[0].empty() && row[1] != "t") job.patterns.push_back(std::move(row[0]));
  }
  if (settings_.on_key_families) {
    // The prefix index needs the templates themselves: a coarse pattern no longer tells a
    // placeholder from a glob.
    auto templates = co_await conn_.query(
        "SELECT template FROM pgcohere.rules UNION SELECT pattern FROM pgcohere.declared_keys", &err, &sqlstate);
    std::vector<std::string> list;
    if (templates) {
      for (auto& row : *templates)
        if (!row.empty() && !row[0].empty()) list.push_back(std::move(row[0]));
    } else if (sqlstate != "3F000" && sqlstate != "42P01") {
      PGC_LOG_WARN << "invalidation [" << name_ << "]: cannot read key templates: " << err;
      co_return false;
    }
    settings_.on_key_families(name_, list);
  }
  job.patterns.push_back(contract::glob_escape(settings_.cache_namespace) + "*");
  job.patterns.insert(job.patterns.end(), settings_.resync_patterns.begin(), settings_.resync_patterns.end());
  tracker_.resynced();
  // Covers every notification handled so far (none is handled before submit() below).
  auto token = watermark_.resync_started();
  resync_reason_.clear();
  metrics::registry()
      .counter("invalidation_resyncs_total", "Coarse purges after a possible loss of invalidations",
               {{"database", name_}, {"reason", reason}})
      .inc();
  PGC_LOG_INFO << "invalidation [" << name_ << "]: resync (" << reason << "): purging " << job.patterns.size()
               << " pattern(s)";
  std::string name = name_;
  submit(std::move(job), 0, [this, name, reason, token, weak = weak_from_this()] {
    PGC_LOG_INFO << "invalidation [" << name << "]: resync (" << reason << ") done";
    auto self = weak.lock();
    if (!self) return;
    watermark_.resync_completed(token);
    publish_applied(true);  // the resync purged the namespace, the stored watermark with it
  });
  co_return true;
}

const contract::HmacSha256& DatabaseConsumer::signing_key() {
  if (!key_ || key_secret_ != settings_.secret) {
    key_ = std::make_unique<contract::HmacSha256>(settings_.secret);
    key_secret_ = settings_.secret;
  }
  return *key_;
}

void DatabaseConsumer::handle(const Notification& n) {
  if (n.channel != settings_.channel) return;
  received_.inc();
  auto decoded = contract::decode_payload(n.payload, dbname_, signing_key());
  if (!decoded.ok()) {
    bool forged = decoded.error == contract::PayloadError::signature_mismatch ||
                  decoded.error == contract::PayloadError::bad_signature_line;
    (forged ? forged_ : malformed_).inc();
    PGC_LOG_WARN << "invalidation [" << name_ << "]: ignored a notification from backend " << n.sender_pid
                 << ": " << contract::to_string(decoded.error)
                 << (decoded.detail.empty() ? "" : " (" + decoded.detail + ")");
    return;
  }
  const auto& p = *decoded.payload;
  std::uint64_t received_us = now_us();
  auto verdict = tracker_.observe(p.epoch, p.seq, Clock::now());
  if (verdict == SequenceTracker::Verdict::replay) {
    replayed_.inc();
    auto current = tracker_.epoch();
    PGC_LOG_WARN << "invalidation [" << name_ << "]: ignored a replayed payload (epoch " << p.epoch << ", seq "
                 << p.seq << ")"
                 << (current && p.epoch < *current ? ": older than the current epoch " + std::to_string(*current)
                                                   : std::string());
    return;
  }
  if (p.commit_us > 0 && received_us >= p.commit_us)
    receive_latency_.observe(static_cast<double>(received_us - p.commit_us) / 1000.0);
  if (verdict == SequenceTracker::Verdict::apply_and_resync) request_resync("epoch");
  PurgeJob job;
  bool policy_changed = false;
  bool asks_resync = false;
  bool for_cache = false;  // see AppliedWatermark::observe
  for (const auto& e : p.entries) {
    switch (e.kind) {
      case contract::EntryKind::key: job.keys.push_back(e.text); break;
      case contract::EntryKind::pattern: job.patterns.push_back(e.text); break;
      case contract::EntryKind::tag:
        // A watched table's own `table:<schema>.<table>` tag names no entry: the cache tags
        // its entries by OID (tbl:/row:/all:, docs/cache.md), so there is nothing to purge.
        if (!contract::is_query_cache_tag(e.text)) break;
        job.tags.push_back(cache::scope_tag(name_, e.text));
        for_cache = true;
        break;
      case contract::EntryKind::resync:
        PGC_LOG_WARN << "invalidation [" << name_ << "]: the extension asks for a resync: " << e.text;
        request_resync("message");
        asks_resync = true;
        break;
      case contract::EntryKind::cache_policy:
        policy_changed = true;
        if (auto relid = contract::parse_relid(e.text); relid && settings_.on_cache_policy_change)
          settings_.on_cache_policy_change(name_, *relid);
        break;
    }
  }
  // Every daemon's cache reads the policies again once this version moves (its lookups
  // see it), not only this one's.
  if (policy_changed) job.tags.push_back(cache::scope_tag(name_, cache::kPolicyTag));
  // Its commits are purged when its job is done, unless it says some were lost (or opens
  // an epoch whose predecessor may have lost some): then only the resync requested above.
  auto ticket = watermark_.observe(p.epoch, p.seq, p.pos,
                                   asks_resync || verdict == SequenceTracker::Verdict::apply_and_resync,
                                   for_cache || policy_changed || asks_resync);
  submit(std::move(job), p.commit_us, [this, ticket, weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    watermark_.completed(ticket);
    publish_applied(false);
  });
}

void DatabaseConsumer::publish_applied(bool force) {
  // Only the leader knows what is purged; a lagging ex-leader's write is harmless anyway
  // (the script never moves the value back).
  auto value = watermark_.applied();
  if (!settings_.applied_backend || !leader_ || !value) return;
  if (!force && !watermark_.worth_storing(applied_written_)) return;
  if (applied_writing_) {
    applied_again_ = applied_again_ || force || watermark_.worth_storing(applied_written_);
    return;
  }
  applied_writing_ = true;
  applied_again_ = false;
  cache::Layout layout(settings_.cache_namespace, name_);
  std::vector<std::string> keys{layout.applied()};
  std::vector<std::string> args{std::to_string(value->epoch) + " " + std::to_string(value->pos)};
  cache::run_script(*settings_.applied_backend, cache::applied_script(), keys, args,
                    [this, v = *value, weak = weak_from_this()](redis::Reply r) {
                      auto self = weak.lock();
                      if (!self) return;
                      applied_writing_ = false;
                      if (r.is_error()) {
                        // Written again when Redis is back (rewrite_applied) or at the next move.
                        PGC_LOG_DEBUG << "invalidation [" << name_ << "]: cannot store the applied watermark: "
                                      << r.str;
                        applied_written_.reset();
                        return;
                      }
                      applied_written_ = v;
                      if (applied_again_) publish_applied(true);
                    });
}

void DatabaseConsumer::submit(PurgeJob job, std::uint64_t commit_us, std::function<void()> after) {
  bool redelete = settings_.redelete_delay.count() > 0 && commit_us > 0;
  auto again = redelete ? std::make_shared<PurgeJob>(job) : nullptr;
  std::optional<std::uint64_t> journal_id;
  if (settings_.journal) {
    journal_id = settings_.journal->append(name_, job);
    if (!journal_id) {
      PGC_LOG_WARN << "invalidation [" << name_ << "]: journal full; a crash now would fall back to resync";
    }
  }
  Journal* journal = settings_.journal;
  purger_.submit(std::move(job), [this, commit_us, journal, journal_id, after = std::move(after), redelete, again,
                                  weak = weak_from_this()] {
    if (journal_id && journal) journal->complete(*journal_id);
    if (after) after();
    auto self = weak.lock();
    if (!self || commit_us == 0) return;
    applied_.inc();
    std::uint64_t now = now_us();
    if (now >= commit_us) latency_.observe(static_cast<double>(now - commit_us) / 1000.0);
    if (redelete && !stopping_) schedule_redelete(std::move(*again));
  });
}

void DatabaseConsumer::schedule_redelete(PurgeJob job) {
  // Purge again a while after the first purge: covers an application that read the old row
  // before the commit and writes its stale value back after our first purge.
  auto timer = std::make_shared<asio::steady_timer>(io_, settings_.redelete_delay);
  redelete_timers_.insert(timer);
  timer->async_wait([this, timer, job = std::move(job), weak = weak_from_this()](
                        boost::system::error_code ec) mutable {
    auto self = weak.lock();
    if (!self) return;
    redelete_timers_.erase(timer);
    if (ec || stopping_) return;
    purger_.submit(std::move(job));
  });
}

}  // namespace pgcohere::invalidation
