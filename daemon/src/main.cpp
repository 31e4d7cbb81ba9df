// pgcohered: PgBouncer-compatible pooler and Redis invalidation daemon.
#include <boost/program_options.hpp>
#include <iostream>

#include "app/app.h"
#include "config/config.h"
#include "config/effective.h"
#include "net/tls_context.h"
#include "util/log.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  po::options_description visible("Usage: pgcohered [OPTIONS] --config FILE  (or: pgcohered [OPTIONS] FILE)");
  visible.add_options()
      ("config,c", po::value<std::string>(), "configuration file (pgbouncer.ini syntax plus [redis], [invalidation], [cache])")
      ("check", "validate the configuration file, print the effective configuration (passwords masked) and exit")
      ("verbose,v", "log debug messages")
      ("version,V", "print the version and exit")
      ("help,h", "print this help and exit");
  po::options_description all;
  all.add(visible).add_options()("config-positional", po::value<std::string>());
  po::positional_options_description positional;
  positional.add("config-positional", 1);

  po::variables_map args;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), args);
    po::notify(args);
  } catch (const po::error& e) {
    std::cerr << "pgcohered: " << e.what() << "\n" << visible;
    return 2;
  }
  if (args.count("help")) {
    std::cout << visible;
    return 0;
  }
  if (args.count("version")) {
    std::cout << "pgcohered " << PGCOHERE_VERSION << "\n";
    return 0;
  }
  std::string path = args.count("config") ? args["config"].as<std::string>()
                     : args.count("config-positional") ? args["config-positional"].as<std::string>()
                                                       : "";
  if (path.empty()) {
    std::cerr << "pgcohered: no configuration file given\n" << visible;
    return 2;
  }
  if (args.count("verbose")) pgcohere::log::set_min_level(pgcohere::log::Level::debug);

  pgcohere::config::Config config;
  try {
    config = pgcohere::config::load_config(path);
  } catch (const pgcohere::config::ConfigError& e) {
    std::cerr << "pgcohered: " << e.what() << "\n";
    return 1;
  }
  if (args.count("check")) {
    for (auto& ignored : config.ignored_keys) std::cerr << ignored << ": not supported by pgcohered, ignored\n";
    try {
      // The TLS key, certificate and CA files load as they would at start.
      pgcohere::net::make_client_side_tls(config.daemon);
      pgcohere::net::make_server_side_tls(config.daemon);
    } catch (const std::exception& e) {
      std::cerr << "pgcohered: " << path << ": " << e.what() << "\n";
      return 1;
    }
    // The effective configuration (defaults included, passwords masked) on stdout, the
    // verdict last, so ExecStartPre leaves both in the journal.
    std::cout << pgcohere::config::effective_config(config) << "; " << path << ": configuration is valid\n";
    return 0;
  }
  if (config.daemon.verbose > 0) pgcohere::log::set_min_level(pgcohere::log::Level::debug);
  try {
    pgcohere::app::App app(std::move(config));
    return app.run();
  } catch (const std::exception& e) {
    PGC_LOG_ERROR << "fatal: " << e.what();
    return 1;
  }
}
