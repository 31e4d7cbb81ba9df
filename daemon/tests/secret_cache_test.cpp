// Secrets looked up with auth_query are reused for auth_query_cache_ttl seconds, no longer,
// and the cache stays bounded.
#include "auth/secret_cache.h"

#include <gtest/gtest.h>

#include "pool/login_retry.h"

using pgcohere::auth::SecretCache;
using pgcohere::auth::UserEntry;
using std::chrono::seconds;

namespace {
UserEntry entry(const std::string& name, const std::string& secret) {
  UserEntry e;
  e.name = name;
  e.secret = secret;
  e.kind = pgcohere::auth::classify_secret(secret);
  return e;
}
}  // namespace

TEST(SecretCache, AnEntryIsReusedUntilItsTtlHasPassed) {
  SecretCache cache;
  auto t0 = SecretCache::Clock::now();
  cache.put("k", entry("alice", "md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), t0, 30);
  auto found = cache.find("k", t0 + seconds(29), 30);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->name, "alice");
  EXPECT_EQ(found->kind, pgcohere::auth::SecretKind::md5);
  EXPECT_FALSE(cache.find("k", t0 + seconds(30), 30));
  EXPECT_FALSE(cache.find("other", t0, 30));
}

TEST(SecretCache, ATtlOfZeroKeepsNothing) {
  SecretCache cache;
  auto t0 = SecretCache::Clock::now();
  cache.put("k", entry("alice", "pw"), t0, 0);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_FALSE(cache.find("k", t0, 0));
}

TEST(SecretCache, AFullCacheDropsExpiredEntriesFirstAndNeverGrowsPastItsBound) {
  SecretCache cache(2);
  auto t0 = SecretCache::Clock::now();
  cache.put("old", entry("a", "pw"), t0, 10);
  cache.put("new", entry("b", "pw"), t0 + seconds(8), 10);
  cache.put("third", entry("c", "pw"), t0 + seconds(12), 10);  // "old" has expired
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.find("new", t0 + seconds(12), 10));
  cache.put("fourth", entry("d", "pw"), t0 + seconds(13), 10);  // nothing expired: start over
  EXPECT_LE(cache.size(), 2u);
  EXPECT_TRUE(cache.find("fourth", t0 + seconds(13), 10));
}

TEST(LoginRetry, ASuccessfulLoginEndsTheRefusalAtOnce) {
  pgcohere::pool::LoginRetry r;
  auto t0 = pgcohere::pool::LoginRetry::Clock::now();
  EXPECT_FALSE(r.failing());
  r.failed(t0, "the database system is shutting down");
  EXPECT_EQ(r.refusal(t0 + seconds(1), 15).value_or(""), "the database system is shutting down");
  r.succeeded();
  EXPECT_FALSE(r.failing());
  EXPECT_FALSE(r.refusal(t0 + seconds(1), 15));
  EXPECT_TRUE(r.may_try(t0 + seconds(1), 15));
}
