// analyze(): libpg_query's protobuf parse tree, walked generically through the protobuf-c
// descriptors so that every node is seen. The walk is default-deny: a node type that is
// not known to be harmless makes the statement not cacheable.
#include "cache/query_analysis.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <memory>
#include <unordered_set>

#include "cache/allow_list.h"
#include "cache/hints.h"

namespace pgcohere::cache {
namespace {

// Far deeper than any real query; bounds the recursion of the walk on hostile input.
constexpr int kMaxDepth = 1000;
// Message nesting allowed in the serialized tree (a walk level can be two messages).
constexpr std::size_t kMaxWireDepth = 2 * kMaxDepth;

struct ParseResultDeleter {
  void operator()(PgQuery__ParseResult* r) const { pg_query__parse_result__free_unpacked(r, nullptr); }
};
using Tree = std::unique_ptr<PgQuery__ParseResult, ParseResultDeleter>;

// True when no message in the serialized tree is nested deeper than max_depth. Checked
// without recursion before unpacking: protobuf-c's unpack recurses once per level and
// overflows the stack at a few thousand (a 10 kB `SELECT 1+1+...+1` did it).
bool depth_within(const std::uint8_t* data, std::size_t len, const ProtobufCMessageDescriptor* root,
                  std::size_t max_depth) {
  struct Level {
    std::size_t end;
    const ProtobufCMessageDescriptor* desc;
  };
  std::vector<Level> stack{{len, root}};
  std::size_t pos = 0;
  auto varint = [&](std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && pos < stack.back().end; shift += 7) {
      std::uint8_t b = data[pos++];
      v |= std::uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (!stack.empty()) {
    if (pos == stack.back().end) {
      stack.pop_back();
      continue;
    }
    std::uint64_t key, n;
    if (!varint(key)) return false;
    std::size_t room = stack.back().end - pos;
    switch (key & 7) {
      case 0:
        if (!varint(n)) return false;
        break;
      case 1:
        if (room < 8) return false;
        pos += 8;
        break;
      case 5:
        if (room < 4) return false;
        pos += 4;
        break;
      case 2: {
        if (!varint(n) || n > stack.back().end - pos) return false;
        const ProtobufCFieldDescriptor* f =
            protobuf_c_message_descriptor_get_field(stack.back().desc, static_cast<unsigned>(key >> 3));
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
          if (stack.size() >= max_depth) return false;
          stack.push_back(
              {pos + static_cast<std::size_t>(n), static_cast<const ProtobufCMessageDescriptor*>(f->descriptor)});
        } else {
          pos += static_cast<std::size_t>(n);
        }
        break;
      }
      default:
        return false;  // groups are not used by pg_query.proto
    }
  }
  return true;
}

// Parses into an unpacked protobuf tree, or returns the parser's error.
Tree parse(const std::string& sql, std::string& error) {
  PgQueryProtobufParseResult r = pg_query_parse_protobuf(sql.c_str());
  Tree tree;
  if (r.error) {
    error = std::string("syntax error: ") + (r.error->message ? r.error->message : "unknown");
  } else if (!depth_within(reinterpret_cast<const std::uint8_t*>(r.parse_tree.data), r.parse_tree.len,
                           &pg_query__parse_result__descriptor, kMaxWireDepth)) {
    error = "nested too deeply";
  } else {
    tree.reset(pg_query__parse_result__unpack(nullptr, r.parse_tree.len,
                                              reinterpret_cast<const std::uint8_t*>(r.parse_tree.data)));
    if (!tree) error = "libpg_query returned a parse tree that does not unpack";
  }
  pg_query_free_protobuf_parse_result(r);
  return tree;
}

// Calls f(child) for every message-typed field of m that is set (for a oneof, only the
// active member), in declaration order.
template <typename F>
void for_each_child(const ProtobufCMessage* m, F&& f) {
  const ProtobufCMessageDescriptor* d = m->descriptor;
  const char* base = reinterpret_cast<const char*>(m);
  for (unsigned i = 0; i < d->n_fields; ++i) {
    const ProtobufCFieldDescriptor& fd = d->fields[i];
    if (fd.type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if (fd.flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      std::uint32_t active;
      std::memcpy(&active, base + fd.quantifier_offset, sizeof active);
      if (active != fd.id) continue;
    }
    if (fd.label == PROTOBUF_C_LABEL_REPEATED) {
      std::size_t n;
      std::memcpy(&n, base + fd.quantifier_offset, sizeof n);
      ProtobufCMessage* const* items;
      std::memcpy(&items, base + fd.offset, sizeof items);
      for (std::size_t j = 0; j < n; ++j)
        if (items[j]) f(items[j]);
    } else {
      ProtobufCMessage* child;
      std::memcpy(&child, base + fd.offset, sizeof child);
      if (child) f(child);
    }
  }
}

// The message inside a Node wrapper (nullptr when unset).
const ProtobufCMessage* unwrap(const PgQuery__Node* n) {
  if (!n || n->node_case == PG_QUERY__NODE__NODE__NOT_SET) return nullptr;
  const ProtobufCMessage* inner = nullptr;
  for_each_child(&n->base, [&](const ProtobufCMessage* c) { inner = c; });
  return inner;
}

bool is(const ProtobufCMessage* m, const ProtobufCMessageDescriptor& d) { return m && m->descriptor == &d; }

// A qualified name as a list of String nodes: (qualifier, name). Fails (nullopt) for
// anything but [name] or [qualifier, name].
struct QualifiedName {
  std::string_view qualifier;
  std::string_view name;
};
std::optional<QualifiedName> qualified_name(PgQuery__Node* const* items, std::size_t n) {
  if (n == 0 || n > 2) return std::nullopt;
  std::string_view parts[2];
  for (std::size_t i = 0; i < n; ++i) {
    if (!items[i] || items[i]->node_case != PG_QUERY__NODE__NODE_STRING) return std::nullopt;
    parts[i] = items[i]->string->sval;
  }
  if (n == 1) return QualifiedName{{}, parts[0]};
  return QualifiedName{parts[0], parts[1]};
}

// Builtins are found in pg_catalog, written unqualified (search_path, where pg_catalog
// comes first unless placed later; resolve() checks that) or qualified with pg_catalog.
bool builtin_qualifier(std::string_view q) { return q.empty() || q == "pg_catalog"; }

bool integer_text(std::string_view s) {
  if (!s.empty() && s.front() == '-') s.remove_prefix(1);
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Statement node names for reasons: "InsertStmt" -> readable enough for an operator.
std::string node_name(const ProtobufCMessage* m) { return m ? m->descriptor->short_name : "nothing"; }

class Walker {
 public:
  explicit Walker(Analysis& a) : a_(a) {}

  void statement(const PgQuery__RawStmt* raw) {
    const ProtobufCMessage* stmt = unwrap(raw->stmt);
    if (!is(stmt, pg_query__select_stmt__descriptor)) {
      fail("not a SELECT or VALUES statement (" + node_name(stmt) + ")");
      return;
    }
    top_ = reinterpret_cast<const PgQuery__SelectStmt*>(stmt);
    if (top_->op == PG_QUERY__SET_OPERATION__SETOP_NONE)
      for (std::size_t i = 0; i < top_->n_from_clause; ++i) mark_top_level(top_->from_clause[i]);
    visit(stmt);
    if (!ok()) return;
    if (a_.relations.empty()) {
      fail("reads no table (nothing to gain from caching)");
      return;
    }
    if (top_->op == PG_QUERY__SET_OPERATION__SETOP_NONE) collect_equalities(top_->where_clause);
  }

 private:
  bool ok() const { return a_.reason.empty(); }
  void fail(std::string reason) {
    if (ok()) a_.reason = std::move(reason);
  }

  // Deeper than kMaxDepth the walk refuses the statement anyway; the bound only keeps these
  // helper recursions (which run before or after it) off the stack limit.
  void mark_top_level(const PgQuery__Node* item, int depth = 0) {
    if (depth > kMaxDepth) return;
    const ProtobufCMessage* m = unwrap(item);
    if (is(m, pg_query__range_var__descriptor)) {
      top_level_.insert(m);
    } else if (is(m, pg_query__join_expr__descriptor)) {
      // A join with an alias hides the names of its tables, so they cannot be qualified.
      auto* j = reinterpret_cast<const PgQuery__JoinExpr*>(m);
      if (j->alias) return;
      mark_top_level(j->larg, depth + 1);
      mark_top_level(j->rarg, depth + 1);
    }
  }

  void children(const ProtobufCMessage* m) {
    for_each_child(m, [&](const ProtobufCMessage* c) { visit(c); });
  }

  void visit(const ProtobufCMessage* m) {
    if (!ok()) return;
    if (++depth_ > kMaxDepth) {
      fail("nested too deeply");
      --depth_;
      return;
    }
    dispatch(m);
    --depth_;
  }

  void dispatch(const ProtobufCMessage* m) {
    const ProtobufCMessageDescriptor* d = m->descriptor;
    if (d == &pg_query__select_stmt__descriptor) return select(reinterpret_cast<const PgQuery__SelectStmt*>(m));
    if (d == &pg_query__range_var__descriptor) return range_var(reinterpret_cast<const PgQuery__RangeVar*>(m));
    if (d == &pg_query__func_call__descriptor) return func_call(reinterpret_cast<const PgQuery__FuncCall*>(m));
    if (d == &pg_query__a__expr__descriptor) return a_expr(reinterpret_cast<const PgQuery__AExpr*>(m));
    if (d == &pg_query__type_cast__descriptor) return type_cast(reinterpret_cast<const PgQuery__TypeCast*>(m));
    if (d == &pg_query__a__const__descriptor) return a_const(reinterpret_cast<const PgQuery__AConst*>(m));
    if (d == &pg_query__sqlvalue_function__descriptor)
      return value_function(reinterpret_cast<const PgQuery__SQLValueFunction*>(m));
    if (d == &pg_query__param_ref__descriptor) {
      int n = reinterpret_cast<const PgQuery__ParamRef*>(m)->number;
      ++param_uses_[n];
      a_.max_param = std::max(a_.max_param, n);
      return;
    }
    if (d == &pg_query__sub_link__descriptor) {
      auto* s = reinterpret_cast<const PgQuery__SubLink*>(m);
      if (s->n_oper_name && !operator_ok(s->oper_name, s->n_oper_name)) return;
      if (s->testexpr) a_.names_operators = true;  // `x IN (SELECT ...)` looks up "=" by name
      return children(m);
    }
    if (d == &pg_query__case_expr__descriptor) {
      if (reinterpret_cast<const PgQuery__CaseExpr*>(m)->arg) a_.names_operators = true;  // CASE x WHEN: "="
      return children(m);
    }
    if (d == &pg_query__join_expr__descriptor) {
      auto* j = reinterpret_cast<const PgQuery__JoinExpr*>(m);
      if (j->is_natural || j->n_using_clause) a_.names_operators = true;  // USING/NATURAL: "="
      return children(m);
    }
    if (d == &pg_query__sort_by__descriptor) {
      auto* s = reinterpret_cast<const PgQuery__SortBy*>(m);
      if (s->n_use_op && !operator_ok(s->use_op, s->n_use_op)) return;
      return children(m);
    }
    if (d == &pg_query__collate_clause__descriptor) {
      a_.names_operators = true;  // collation names are looked up through search_path too
      return children(m);
    }
    if (harmless(d)) return children(m);
    fail(unsupported_reason(d));
  }

  // Nodes with no effect of their own on cacheability: their children decide.
  static bool harmless(const ProtobufCMessageDescriptor* d) {
    static const std::unordered_set<const ProtobufCMessageDescriptor*> kHarmless{
        &pg_query__node__descriptor,
        &pg_query__list__descriptor,
        &pg_query__string__descriptor,
        &pg_query__integer__descriptor,
        &pg_query__float__descriptor,
        &pg_query__boolean__descriptor,
        &pg_query__bit_string__descriptor,
        &pg_query__res_target__descriptor,
        &pg_query__column_ref__descriptor,
        &pg_query__a__star__descriptor,
        &pg_query__a__indices__descriptor,
        &pg_query__a__indirection__descriptor,
        &pg_query__bool_expr__descriptor,
        &pg_query__null_test__descriptor,
        &pg_query__boolean_test__descriptor,
        &pg_query__case_when__descriptor,
        &pg_query__coalesce_expr__descriptor,
        &pg_query__min_max_expr__descriptor,
        &pg_query__alias__descriptor,
        &pg_query__window_def__descriptor,
        &pg_query__row_expr__descriptor,
        &pg_query__a__array_expr__descriptor,
        &pg_query__grouping_set__descriptor,
        &pg_query__grouping_func__descriptor,
        &pg_query__range_subselect__descriptor,
    };
    return kHarmless.count(d) != 0;
  }

  static std::string unsupported_reason(const ProtobufCMessageDescriptor* d) {
    if (d == &pg_query__range_function__descriptor) return "a function in FROM is not cacheable";
    if (d == &pg_query__range_table_sample__descriptor) return "TABLESAMPLE is not cacheable";
    if (d == &pg_query__locking_clause__descriptor) return "FOR UPDATE/SHARE locks rows";
    if (d == &pg_query__into_clause__descriptor) return "SELECT INTO creates a table";
    if (d == &pg_query__named_arg_expr__descriptor) return "named function arguments are not cacheable";
    return std::string("unsupported construct (") + d->short_name + ")";
  }

  void select(const PgQuery__SelectStmt* s) {
    if (s->into_clause) return fail("SELECT INTO creates a table");
    if (s->n_locking_clause) return fail("FOR UPDATE/SHARE/NO KEY UPDATE/KEY SHARE locks rows");
    std::size_t scope = ctes_.size();
    if (s->with_clause) with(s->with_clause);
    const ProtobufCMessage* with_clause = s->with_clause ? &s->with_clause->base : nullptr;
    for_each_child(&s->base, [&](const ProtobufCMessage* c) {
      if (c != with_clause) visit(c);
    });
    ctes_.resize(scope);
  }

  // Pushes the CTE names onto the scope: a non-recursive WITH's query sees only the CTEs
  // before it (a later name in its body is a table), a recursive WITH's see all of them.
  void with(const PgQuery__WithClause* w) {
    std::vector<const PgQuery__CommonTableExpr*> ctes;
    for (std::size_t i = 0; i < w->n_ctes; ++i) {
      const ProtobufCMessage* m = unwrap(w->ctes[i]);
      if (!is(m, pg_query__common_table_expr__descriptor)) return fail("unsupported WITH item (" + node_name(m) + ")");
      ctes.push_back(reinterpret_cast<const PgQuery__CommonTableExpr*>(m));
    }
    if (w->recursive)
      for (auto* c : ctes) ctes_.emplace_back(c->ctename);
    for (auto* c : ctes) {
      if (c->search_clause || c->cycle_clause) return fail("WITH ... SEARCH/CYCLE is not cacheable");
      const ProtobufCMessage* q = unwrap(c->ctequery);
      if (!is(q, pg_query__select_stmt__descriptor)) return fail("data-modifying WITH query (" + node_name(q) + ")");
      visit(q);
      if (!w->recursive) ctes_.emplace_back(c->ctename);
    }
  }

  bool is_cte(std::string_view name) const { return std::find(ctes_.begin(), ctes_.end(), name) != ctes_.end(); }

  void range_var(const PgQuery__RangeVar* rv) {
    if (rv->catalogname && *rv->catalogname) return fail("a database-qualified table name is not cacheable");
    std::string_view schema = rv->schemaname ? rv->schemaname : "";
    std::string_view name = rv->relname ? rv->relname : "";
    if (schema.empty() && is_cte(name)) return;  // a WITH query, not a relation
    RelationRef r;
    r.schema = schema;
    r.name = name;
    if (rv->alias && rv->alias->aliasname) r.alias = rv->alias->aliasname;
    r.top_level_from = top_level_.count(&rv->base) != 0;
    relation_index_[&rv->base] = a_.relations.size();
    a_.relations.push_back(std::move(r));
  }

  bool operator_ok(PgQuery__Node* const* name, std::size_t n) {
    a_.names_operators = true;
    auto q = qualified_name(name, n);
    if (!q || !builtin_qualifier(q->qualifier) || !is_allowed_operator(q->name)) {
      fail("operator " + (q ? std::string(q->name) : std::string("?")) + " is not on the allow-list");
      return false;
    }
    return true;
  }

  void func_call(const PgQuery__FuncCall* f) {
    a_.names_operators = true;
    auto q = qualified_name(f->funcname, f->n_funcname);
    if (!q || !builtin_qualifier(q->qualifier))
      return fail("function " + (q ? std::string(q->qualifier) + "." + std::string(q->name) : "?") +
                  "() is not on the allow-list");
    const AllowedFunction* af = find_allowed_function(q->name);
    std::string fname(q->name);
    if (!af) return fail("function " + fname + "() is not on the allow-list");
    int nargs = static_cast<int>(f->n_args);
    if (nargs < af->min_args || nargs > af->max_args)
      return fail("function " + fname + "() with " + std::to_string(nargs) + " arguments is not on the allow-list");
    if (f->agg_within_group) return fail("WITHIN GROUP aggregates are not cacheable");
    if (f->over && af->kind == FunctionKind::scalar) return fail("function " + fname + "() is not a window function");
    if (!f->over && af->kind == FunctionKind::window) return fail("window function " + fname + "() without OVER");
    children(&f->base);
  }

  void a_expr(const PgQuery__AExpr* e) {
    switch (e->kind) {
      case PG_QUERY__A__EXPR__KIND__AEXPR_OP:
      case PG_QUERY__A__EXPR__KIND__AEXPR_OP_ANY:
      case PG_QUERY__A__EXPR__KIND__AEXPR_OP_ALL:
      case PG_QUERY__A__EXPR__KIND__AEXPR_DISTINCT:
      case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_DISTINCT:
      case PG_QUERY__A__EXPR__KIND__AEXPR_NULLIF:
      case PG_QUERY__A__EXPR__KIND__AEXPR_IN:
      case PG_QUERY__A__EXPR__KIND__AEXPR_LIKE:
      case PG_QUERY__A__EXPR__KIND__AEXPR_ILIKE:
        if (!operator_ok(e->name, e->n_name)) return;
        break;
      case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN:
      case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN:
      case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN_SYM:
      case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN_SYM:
        a_.names_operators = true;  // BETWEEN is >= and <=
        break;
      case PG_QUERY__A__EXPR__KIND__AEXPR_SIMILAR:
        return fail("SIMILAR TO is not on the allow-list");
      default:
        return fail("unsupported expression kind");
    }
    children(&e->base);
  }

  void type_cast(const PgQuery__TypeCast* c) {
    a_.names_operators = true;
    const PgQuery__TypeName* t = c->type_name;
    if (!t) return fail("cast without a type");
    auto q = qualified_name(t->names, t->n_names);
    if (!q || !builtin_qualifier(q->qualifier) || t->setof || t->pct_type || !is_allowed_cast_type(q->name))
      return fail("cast to " + (q ? std::string(q->name) : std::string("?")) + " is not on the allow-list");
    if (c->arg) visit(&c->arg->base);
    for (std::size_t i = 0; i < t->n_typmods; ++i)
      if (t->typmods[i]) visit(&t->typmods[i]->base);
  }

  void a_const(const PgQuery__AConst* c) {
    if (c->val_case == PG_QUERY__A__CONST__VAL_SVAL && c->sval && has_clock_word(c->sval->sval))
      fail("a date/time literal such as 'now' or 'today' reads the clock");
  }

  void value_function(const PgQuery__SQLValueFunction* f) {
    switch (f->op) {
      case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_ROLE:
      case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_USER:
      case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_USER:
      case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_SESSION_USER:
        return;  // the role is part of the cache key
      case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_CATALOG:
      case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_SCHEMA:
        return fail("current_catalog/current_schema are not on the allow-list");
      default:
        return fail("current_date/current_time/current_timestamp/localtime/localtimestamp read the clock");
    }
  }

  // The top-level AND-conjunction of the top-level WHERE.
  void collect_equalities(const PgQuery__Node* where, int depth = 0) {
    const ProtobufCMessage* m = unwrap(where);
    if (!m || depth > kMaxDepth) return;
    if (is(m, pg_query__bool_expr__descriptor)) {
      auto* b = reinterpret_cast<const PgQuery__BoolExpr*>(m);
      if (b->boolop == PG_QUERY__BOOL_EXPR_TYPE__AND_EXPR)
        for (std::size_t i = 0; i < b->n_args; ++i) collect_equalities(b->args[i], depth + 1);
      return;
    }
    if (!is(m, pg_query__a__expr__descriptor)) return;
    auto* e = reinterpret_cast<const PgQuery__AExpr*>(m);
    if (e->kind != PG_QUERY__A__EXPR__KIND__AEXPR_OP) return;
    auto op = qualified_name(e->name, e->n_name);
    if (!op || !builtin_qualifier(op->qualifier) || op->name != "=") return;
    if (!equality(e->lexpr, e->rexpr)) equality(e->rexpr, e->lexpr);
  }

  bool equality(const PgQuery__Node* column_side, const PgQuery__Node* value_side) {
    const ProtobufCMessage* c = unwrap(column_side);
    const ProtobufCMessage* v = unwrap(value_side);
    if (!is(c, pg_query__column_ref__descriptor) || !v) return false;
    auto* ref = reinterpret_cast<const PgQuery__ColumnRef*>(c);
    std::vector<std::string_view> fields;
    for (std::size_t i = 0; i < ref->n_fields; ++i) {
      if (!ref->fields[i] || ref->fields[i]->node_case != PG_QUERY__NODE__NODE_STRING) return false;
      fields.push_back(ref->fields[i]->string->sval);
    }
    auto relation = column_owner(fields);
    if (!relation) return false;
    Equality eq;
    eq.relation = *relation;
    eq.column = fields.back();
    if (is(v, pg_query__type_cast__descriptor)) {
      // Drivers that inline values write `'...'::uuid`; a type modifier could change the
      // value (varchar(3) truncates), so only plain casts to the by-column types count.
      auto* cast = reinterpret_cast<const PgQuery__TypeCast*>(v);
      const PgQuery__TypeName* t = cast->type_name;
      if (!t || t->n_typmods || t->n_array_bounds || t->setof || t->pct_type) return false;
      auto q = qualified_name(t->names, t->n_names);
      if (!q || !builtin_qualifier(q->qualifier)) return false;
      static constexpr std::string_view kCasts[] = {"int2", "int4", "int8", "text", "varchar", "uuid"};
      if (std::find(std::begin(kCasts), std::end(kCasts), q->name) == std::end(kCasts)) return false;
      eq.cast = q->name;
      v = unwrap(cast->arg);
      if (!v) return false;
    }
    if (is(v, pg_query__param_ref__descriptor)) {
      eq.kind = Equality::Kind::param;
      eq.param = reinterpret_cast<const PgQuery__ParamRef*>(v)->number;
      eq.param_used_once = param_uses_[eq.param] == 1;
    } else if (is(v, pg_query__a__const__descriptor)) {
      auto* k = reinterpret_cast<const PgQuery__AConst*>(v);
      if (k->isnull) return false;
      if (k->val_case == PG_QUERY__A__CONST__VAL_IVAL && k->ival) {
        eq.kind = Equality::Kind::integer;
        eq.text = std::to_string(k->ival->ival);
      } else if (k->val_case == PG_QUERY__A__CONST__VAL_FVAL && k->fval && integer_text(k->fval->fval)) {
        eq.kind = Equality::Kind::integer;  // an integer too large for int4 is a Float node
        eq.text = k->fval->fval;
      } else if (k->val_case == PG_QUERY__A__CONST__VAL_SVAL && k->sval) {
        eq.kind = Equality::Kind::string;
        eq.text = k->sval->sval;
      } else {
        return false;
      }
    } else {
      return false;
    }
    a_.equalities.push_back(std::move(eq));
    return true;
  }

  // Which top-level FROM relation a column reference names, if that is certain.
  std::optional<std::size_t> column_owner(const std::vector<std::string_view>& f) const {
    if (f.size() == 1) {
      // Unqualified: only when the FROM list is exactly one table.
      if (top_->n_from_clause != 1) return std::nullopt;
      auto it = relation_index_.find(unwrap(top_->from_clause[0]));
      if (it == relation_index_.end()) return std::nullopt;
      return it->second;
    }
    std::optional<std::size_t> found;
    for (std::size_t i = 0; i < a_.relations.size(); ++i) {
      const RelationRef& r = a_.relations[i];
      if (!r.top_level_from) continue;
      bool match = false;
      if (f.size() == 2) match = f[0] == (r.alias.empty() ? r.name : r.alias);
      if (f.size() == 3) match = r.alias.empty() && !r.schema.empty() && f[0] == r.schema && f[1] == r.name;
      if (!match) continue;
      if (found) return std::nullopt;  // ambiguous (PostgreSQL would refuse it anyway)
      found = i;
    }
    return found;
  }

  Analysis& a_;
  const PgQuery__SelectStmt* top_ = nullptr;
  std::vector<std::string> ctes_;  // visible WITH names, innermost last
  std::unordered_set<const ProtobufCMessage*> top_level_;
  std::map<const ProtobufCMessage*, std::size_t> relation_index_;
  std::map<int, int> param_uses_;
  int depth_ = 0;
};

}  // namespace

bool has_clock_word(std::string_view text) {
  // PostgreSQL's date/time input reads these words as the current time (also inside a
  // longer value such as 'today 10:00'), so a literal holding one changes meaning over time.
  static constexpr std::string_view kWords[] = {"now", "today", "tomorrow", "yesterday"};
  std::size_t i = 0;
  while (i < text.size()) {
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    if (!alpha(text[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    std::string word;
    while (j < text.size() && alpha(text[j])) word += static_cast<char>(text[j++] | 0x20);
    for (auto w : kWords)
      if (word == w) return true;
    i = j;
  }
  return false;
}

Analysis analyze(std::string_view sql) {
  Analysis a;
  a.non_ascii = std::any_of(sql.begin(), sql.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  // The protocol cannot carry a NUL inside a query; libpg_query would stop at it and
  // analyse only a prefix.
  if (sql.find('\0') != std::string_view::npos) {
    a.reason = "the query text contains a NUL byte";
    return a;
  }
  // libpg_query recurses without a bound while it serializes the tree: a 45 kB chain of
  // `1+1+...` overflows an 8 MB stack inside it. 16 kB keeps every input far from that.
  if (sql.size() > kMaxAnalyzedBytes) {
    a.reason = "longer than " + std::to_string(kMaxAnalyzedBytes) + " bytes: not analysed";
    return a;
  }
  std::string text(sql);
  HintScan hints = scan_hints(text);
  a.hint = hints.hint;
  a.hint_ttl_seconds = hints.ttl_seconds;
  if (!hints.error.empty()) {
    a.reason = hints.error;
    return a;
  }
  if (a.hint == Hint::nocache) {
    a.reason = "the query has a pgcohere:nocache hint";
    return a;
  }
  std::string error;
  Tree tree = parse(text, error);
  if (!tree) {
    a.reason = error;
    return a;
  }
  if (tree->n_stmts != 1) {
    a.reason = tree->n_stmts == 0 ? "empty query" : std::to_string(tree->n_stmts) + " statements in one query";
    return a;
  }
  Walker(a).statement(tree->stmts[0]);
  a.cacheable = a.reason.empty();
  if (!a.cacheable) a.equalities.clear();
  return a;
}

}  // namespace pgcohere::cache
