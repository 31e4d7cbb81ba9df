// cache_key(): every part changes the key, and parts cannot be confused with each other
// by moving bytes across their borders.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <vector>

#include "cache/key.h"

using namespace pgcohere::cache;

namespace {

// Owns the data the KeyParts' views and spans point into.
struct Sample {
  std::vector<std::uint32_t> types{23, 25};
  std::vector<std::optional<std::string>> values{std::string("42"), std::nullopt};
  std::vector<std::int16_t> formats{0, 1};
  std::vector<std::int16_t> results{1};
  KeyParts parts() const {
    KeyParts p;
    p.database = "app";
    p.role = "alice";
    p.search_path = "\"$user\", public";
    p.client_encoding = "UTF8";
    p.date_style = "ISO, MDY";
    p.time_zone = "UTC";
    p.interval_style = "postgres";
    p.extra_float_digits = "1";
    p.bytea_output = "hex";
    p.standard_conforming_strings = "on";
    p.query = "SELECT * FROM t WHERE id = $1";
    p.param_types = types;
    p.param_values = values;
    p.param_formats = formats;
    p.result_formats = results;
    p.protocol = Protocol::extended;
    return p;
  }
};

}  // namespace

TEST(CacheKey, IsLowercaseHexSha256AndStable) {
  Sample s;
  std::string k = cache_key(s.parts());
  EXPECT_EQ(k.size(), 64u);
  EXPECT_EQ(k.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(k, cache_key(s.parts()));
  // Pinned: a change of the encoding must be deliberate (it orphans every stored entry).
  KeyParts empty;
  EXPECT_EQ(cache_key(empty), cache_key(KeyParts{}));
}

TEST(CacheKey, EveryPartChangesTheKey) {
  Sample s;
  const std::string base = cache_key(s.parts());
  std::vector<std::uint32_t> other_types{23, 1043};
  std::vector<std::optional<std::string>> other_values{std::string("43"), std::nullopt};
  std::vector<std::optional<std::string>> empty_not_null{std::string("42"), std::string()};
  std::vector<std::int16_t> other_formats{1, 1};
  std::vector<std::int16_t> other_results{0};
  std::vector<std::function<void(KeyParts&)>> changes{
      [](KeyParts& p) { p.database = "app2"; },
      [](KeyParts& p) { p.role = "bob"; },
      [](KeyParts& p) { p.search_path = "public"; },
      [](KeyParts& p) { p.client_encoding = "LATIN1"; },
      [](KeyParts& p) { p.date_style = "German, DMY"; },
      [](KeyParts& p) { p.time_zone = "Europe/Paris"; },
      [](KeyParts& p) { p.interval_style = "iso_8601"; },
      [](KeyParts& p) { p.extra_float_digits = "3"; },
      [](KeyParts& p) { p.bytea_output = "escape"; },
      [](KeyParts& p) { p.standard_conforming_strings = "off"; },
      [](KeyParts& p) { p.query = "SELECT * FROM t WHERE id = $1 "; },
      [&](KeyParts& p) { p.param_types = other_types; },
      [&](KeyParts& p) { p.param_values = other_values; },
      [&](KeyParts& p) { p.param_values = empty_not_null; },  // NULL is not ''
      [&](KeyParts& p) { p.param_formats = other_formats; },
      [&](KeyParts& p) { p.result_formats = other_results; },
      [](KeyParts& p) { p.protocol = Protocol::simple; },
      [](KeyParts& p) { p.batch_shape = "BES"; },  // no ParseComplete, no RowDescription
  };
  std::set<std::string> keys{base};
  for (std::size_t i = 0; i < changes.size(); ++i) {
    KeyParts p = s.parts();
    changes[i](p);
    EXPECT_TRUE(keys.insert(cache_key(p)).second) << "change " << i << " did not give a new key";
  }
}

TEST(CacheKey, BytesMovedAcrossPartBordersGiveAnotherEncoding) {
  KeyParts a, b;
  a.database = "ab";
  a.role = "c";
  b.database = "a";
  b.role = "bc";
  EXPECT_NE(encode_key_parts(a), encode_key_parts(b));
  EXPECT_NE(cache_key(a), cache_key(b));

  // The query and the first parameter.
  std::vector<std::optional<std::string>> v1{std::string("x")}, v2{std::string("")};
  a = {};
  b = {};
  a.query = "SELECT 1x";
  b.query = "SELECT 1";
  a.param_values = v2;
  b.param_values = v1;
  EXPECT_NE(encode_key_parts(a), encode_key_parts(b));

  // Values split differently, and a NULL against the bytes that mark one.
  std::vector<std::optional<std::string>> split1{std::string("ab"), std::string("c")};
  std::vector<std::optional<std::string>> split2{std::string("a"), std::string("bc")};
  std::vector<std::optional<std::string>> one_null{std::nullopt};
  std::vector<std::optional<std::string>> zero_byte{std::string(1, '\0')};
  std::vector<std::optional<std::string>> none{};
  std::set<std::string> encodings;
  for (auto* v : {&split1, &split2, &one_null, &zero_byte, &none, &v1, &v2}) {
    KeyParts p;
    p.param_values = *v;
    EXPECT_TRUE(encodings.insert(encode_key_parts(p)).second);
  }

  // Lists of numbers: one element moved from formats to result formats.
  std::vector<std::int16_t> f1{1};
  a = {};
  b = {};
  a.param_formats = f1;
  b.result_formats = f1;
  EXPECT_NE(encode_key_parts(a), encode_key_parts(b));
}

TEST(CacheKey, EveryStringPartIsLengthPrefixedSoEmptyPartsDoNotVanish) {
  // Shifting a setting's value into its neighbour (all pairs of adjacent string parts).
  std::vector<std::string_view KeyParts::*> fields{&KeyParts::database,       &KeyParts::role,
                                                   &KeyParts::search_path,    &KeyParts::client_encoding,
                                                   &KeyParts::date_style,     &KeyParts::time_zone,
                                                   &KeyParts::interval_style, &KeyParts::extra_float_digits,
                                                   &KeyParts::bytea_output,   &KeyParts::standard_conforming_strings,
                                                   &KeyParts::query};
  std::set<std::string> encodings;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    KeyParts p;
    p.*fields[i] = "v";
    EXPECT_TRUE(encodings.insert(encode_key_parts(p)).second) << i;
  }
  EXPECT_TRUE(encodings.insert(encode_key_parts(KeyParts{})).second);
}
