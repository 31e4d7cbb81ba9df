// Cacheable request recognition (see request.h).
#include "cache/request.h"

#include "protocol/messages.h"
#include "protocol/wire.h"

namespace pgcohere::cache {

namespace {
struct Message {
  char type;
  std::string_view body;
};

// The complete messages at the start of data, up to and including the first Sync or
// Query (at most a handful: a cacheable batch has five).
std::optional<std::vector<Message>> leading_batch(std::string_view data, std::size_t* consumed) {
  std::vector<Message> out;
  std::size_t pos = 0;
  while (out.size() < 6) {
    if (data.size() - pos < 5) return std::nullopt;
    int32_t len = protocol::read_i32(data.data() + pos + 1);
    if (len < 4 || static_cast<std::size_t>(len) > data.size() - pos - 1) return std::nullopt;
    out.push_back({data[pos], data.substr(pos + 5, static_cast<std::size_t>(len) - 4)});
    pos += 1 + static_cast<std::size_t>(len);
    if (out.back().type == 'S' || out.back().type == 'Q') {
      *consumed = pos;
      return out;
    }
  }
  return std::nullopt;
}

std::optional<Request> simple(const Message& m) {
  auto q = protocol::parse_query(m.body);
  if (!q) return std::nullopt;
  Request r;
  r.protocol = Request::Protocol::simple;
  r.sql.assign(q.value());
  r.shape = "Q";
  return r;
}

std::optional<Request> extended(const std::vector<Message>& batch, const StatementLookup& named) {
  Request r;
  r.protocol = Request::Protocol::extended;
  std::size_t i = 0;
  for (const auto& m : batch) r.shape.push_back(m.type);
  if (batch[i].type == 'P') {
    auto p = protocol::parse_parse(batch[i].body);
    // A named statement outlives the batch: the pooler must see its Parse.
    if (!p || !p->name.empty()) return std::nullopt;
    r.sql.assign(p->query);
    r.param_types.assign(p->param_types);
    ++i;
  }
  if (i >= batch.size() || batch[i].type != 'B') return std::nullopt;
  auto b = protocol::parse_bind(batch[i].body);
  if (!b || !b->portal.empty()) return std::nullopt;
  if (batch[0].type == 'P') {
    if (!b->statement.empty()) return std::nullopt;
  } else {
    if (b->statement.empty() || !named) return std::nullopt;  // the unnamed statement of an earlier batch: unknown here
    auto s = named(b->statement);
    if (!s) return std::nullopt;
    r.sql.assign(s->query);
    r.param_types.assign(s->param_types);
  }
  for (std::size_t k = 0; k < b->values.size(); ++k) {
    const auto& v = b->values[k];
    r.params.push_back(v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
    r.param_formats.push_back(b->param_format(k));
  }
  r.result_formats = b->result_formats;
  ++i;
  if (i < batch.size() && batch[i].type == 'D') {
    auto d = protocol::parse_target(batch[i].body);
    if (!d || d->kind != 'P' || !d->name.empty()) return std::nullopt;
    ++i;
  }
  if (i >= batch.size() || batch[i].type != 'E') return std::nullopt;
  auto e = protocol::parse_execute(batch[i].body);
  // A row limit leaves a suspended portal: only whole results are cached.
  if (!e || !e->portal.empty() || e->max_rows != 0) return std::nullopt;
  ++i;
  if (i != batch.size() - 1 || batch[i].type != 'S') return std::nullopt;
  return r;
}
}  // namespace

std::optional<Request> recognize(std::string_view data, const StatementLookup& named) {
  std::size_t consumed = 0;
  auto batch = leading_batch(data, &consumed);
  if (!batch) return std::nullopt;
  std::optional<Request> r;
  if (batch->size() == 1 && (*batch)[0].type == 'Q') {
    r = simple((*batch)[0]);
  } else if (batch->back().type == 'S' && batch->size() >= 3) {
    r = extended(*batch, named);
  }
  if (r) r->consumed = consumed;
  return r;
}

}  // namespace pgcohere::cache
