// Unit tests of the effective configuration that `pgcohered --check` prints.
#include <gtest/gtest.h>

#include "config/config.h"
#include "config/effective.h"

using namespace pgcohere::config;

TEST(EffectiveConfig, ListsEverySectionWithDefaultsAndTheFileValues) {
  Config c = parse_config(
      "[databases]\nappdb = host=10.0.0.5 port=5433 dbname=app\n"
      "[pgcohered]\nlisten_port = 6500\nauth_type = trust\n",
      "t.ini");
  std::string out = effective_config(c);
  EXPECT_NE(out.find("[databases]\nappdb = dbname=app host=10.0.0.5 port=5433\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nlisten_port = 6500\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\ndefault_pool_size = 20\n"), std::string::npos) << out;  // a default
  for (const char* section : {"[pgcohered]\n", "[redis]\n", "[invalidation]\n", "[cache]\n"}) {
    auto first = out.find(section);
    EXPECT_NE(first, std::string::npos) << section;
    EXPECT_EQ(out.find(section, first + 1), std::string::npos) << section << " twice";
  }
}

TEST(EffectiveConfig, MasksPasswordsOfDatabasesAndTheRedisUrl) {
  Config c = parse_config(
      "[databases]\nappdb = host=db user=app password=hunter2 dbname=app\n"
      "[pgcohered]\nauth_type = trust\n[redis]\nurl = redis://:s3cret@cache:6380/2\n"
      "[invalidation]\nsecret_file = /etc/pgcohere/secret\n",
      "t.ini");
  std::string out = effective_config(c);
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
  EXPECT_EQ(out.find("s3cret"), std::string::npos) << out;
  EXPECT_NE(out.find("password=********"), std::string::npos) << out;
  EXPECT_NE(out.find("url = redis://:********@cache:6380/2\n"), std::string::npos) << out;
}

TEST(EffectiveConfig, ARedisUrlKeepsItsShapeWithOnlyThePasswordMasked) {
  EXPECT_EQ(mask_url_password("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
  EXPECT_EQ(mask_url_password("redis://user:pw@h:1/0"), "redis://user:********@h:1/0");
  EXPECT_EQ(mask_url_password("redis://pw@h:1"), "redis://********@h:1");
  EXPECT_EQ(mask_url_password(""), "");
}

TEST(EffectiveConfig, QuotesValuesThatNeedQuotesToBeReadBack) {
  Config c =
      parse_config("[databases]\nappdb = host=db application_name='my app'\n[pgcohered]\nauth_type = trust\n", "t.ini");
  EXPECT_NE(effective_config(c).find("application_name='my app'"), std::string::npos) << effective_config(c);
}

TEST(EffectiveConfig, ListsPeersAndPeerId) {
  Config c = parse_config("[pgcohered]\nauth_type = trust\npeer_id = 2\n[peers]\n1 = host=/run/p1\n2 = host=/run/p2\n",
                          "t.ini");
  std::string out = effective_config(c);
  EXPECT_NE(out.find("[peers]\n1 = host=/run/p1\n2 = host=/run/p2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\npeer_id = 2\n"), std::string::npos) << out;
  EXPECT_EQ(parse_config("[pgcohered]\nauth_type = trust\n", "t.ini").peers.size(), 0u);
  EXPECT_EQ(effective_config(parse_config("[pgcohered]\nauth_type = trust\n", "t.ini")).find("[peers]"),
            std::string::npos);
}
