// Command dispatch for the admin console.
#include "admin/console.h"

#include <memory>

#include "admin/show.h"
#include "util/log.h"

namespace pgcohere::admin {

namespace {

Reply error(std::string message) {
  Reply r;
  r.error = std::move(message);
  return r;
}

Reply done_with_tag(std::string_view tag) {
  Reply r;
  r.result = ResultSet{};
  r.result->command_tag = std::string(tag);
  return r;
}

}  // namespace

void Console::execute(std::string_view query, bool admin_user, std::function<void(Reply)> reply) {
  ParseResult parsed = parse_command(query);
  if (!parsed.command) {
    reply(error(parsed.error));
    return;
  }
  const Command& cmd = *parsed.command;
  if (requires_admin(cmd) && !admin_user) {
    reply(error("admin access needed"));
    return;
  }

  if (cmd.verb == Verb::show) {
    if (cmd.show == Show::fds || cmd.show == Show::sockets || cmd.show == Show::active_sockets) {
      reply(error("SHOW " + std::string(show_name(cmd.show)) + " is not supported by pgcohered"));
      return;
    }
    Snapshot snap;
    if (cmd.show != Show::help && cmd.show != Show::version && cmd.show != Show::param)
      snap = target_.snapshot(cmd.show);
    if ((cmd.show == Show::cache || cmd.show == Show::cache_rules) && !snap.cache_error.empty()) {
      reply(error(snap.cache_error));
      return;
    }
    Reply r;
    r.result = build_show(cmd.show, snap, cmd.arg);
    reply(std::move(r));
    return;
  }

  if (cmd.verb == Verb::cache_delete) {
    PGC_LOG_INFO << "admin console: CACHE DELETE " << cmd.arg << " '" << cmd.value << "' command issued";
    target_.cache_delete(cmd.arg, cmd.value, [reply = std::move(reply)](std::int64_t count, std::string err) {
      if (!err.empty()) return reply(error(std::move(err)));
      Reply r = done_with_tag("CACHE DELETE");
      r.result->columns.push_back({"deleted", oid::int8, 8});
      r.result->rows.push_back({std::to_string(count)});
      reply(std::move(r));
    });
    return;
  }

  if (cmd.verb == Verb::set && is_fake_param(cmd.arg)) {
    Reply r = done_with_tag("SET");
    r.result->notices.push_back({"SET ignored", ""});
    reply(std::move(r));
    return;
  }

  PGC_LOG_INFO << "admin console: " << verb_name(cmd.verb)
               << (cmd.arg.empty() || cmd.verb == Verb::set ? "" : " '" + cmd.arg + "'")
               << " command issued";
  std::string tag(verb_name(cmd.verb));
  // Shared so that a target which keeps `done` for later holds the reply alive.
  auto respond = std::make_shared<std::function<void(Reply)>>(std::move(reply));
  ConsoleTarget::Done done = [respond, tag](std::string err) {
    if (err.empty()) (*respond)(done_with_tag(tag));
    else (*respond)(error(std::move(err)));
  };
  switch (cmd.verb) {
    case Verb::pause: target_.pause(cmd.arg, std::move(done)); break;
    case Verb::resume: target_.resume(cmd.arg, std::move(done)); break;
    case Verb::reload: target_.reload(std::move(done)); break;
    case Verb::shutdown: target_.shutdown(cmd.arg, std::move(done)); break;
    case Verb::kill: target_.kill(cmd.arg, std::move(done)); break;
    case Verb::suspend: target_.suspend(std::move(done)); break;
    case Verb::kill_client: target_.kill_client(std::stoll(cmd.arg), std::move(done)); break;
    case Verb::disable: target_.disable(cmd.arg, std::move(done)); break;
    case Verb::enable: target_.enable(cmd.arg, std::move(done)); break;
    case Verb::reconnect: target_.reconnect(cmd.arg, std::move(done)); break;
    case Verb::wait_close: target_.wait_close(cmd.arg, std::move(done)); break;
    case Verb::set: target_.set(cmd.arg, cmd.value, std::move(done)); break;
    case Verb::show:
    case Verb::cache_delete: break;
  }
}

}  // namespace pgcohere::admin
