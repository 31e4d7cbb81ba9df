// SHOW result sets with PgBouncer's (1.24+) column names, order and types, built from
// snapshot rows. Pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "admin/command.h"
#include "admin/result_set.h"
#include "admin/snapshot.h"
#include "config/config.h"

namespace pgcohere::admin {

ResultSet show_pools(const std::vector<PoolRow>& rows);
ResultSet show_clients(const std::vector<ClientRow>& rows);
ResultSet show_servers(const std::vector<ServerRow>& rows);
ResultSet show_databases(const std::vector<DatabaseRow>& rows);
ResultSet show_users(const std::vector<UserRow>& rows);
ResultSet show_stats(const std::vector<StatsRow>& rows);
ResultSet show_stats_totals(const std::vector<StatsRow>& rows);
ResultSet show_stats_averages(const std::vector<StatsRow>& rows);
// Sums over every database; averages summed too (rates add up across databases).
ResultSet show_totals(const std::vector<StatsRow>& rows);
ResultSet show_config(const std::vector<ConfigRow>& rows);
ResultSet show_lists(const ListsRow& lists);
ResultSet show_mem(const std::vector<MemRow>& rows);
ResultSet show_version(const std::string& version);
ResultSet show_state(bool paused, bool suspended);
ResultSet show_help();
ResultSet show_param(std::string_view name);  // SHOW client_encoding and friends

// SHOW CONFIG rows from the running configuration: [pgcohered] keys by their PgBouncer
// names, other sections' keys as section.key; a Redis URL with a password masked; changeable = "no" for the
// keys that only take effect at start (listen_addr, listen_port, unix_socket_dir, ...).
std::vector<ConfigRow> config_rows(const config::Config& config);

// Dispatches on `what`; Show::fds, sockets and active_sockets have no builder (nullopt-like:
// an empty ResultSet with an empty tag).
ResultSet build_show(Show what, const Snapshot& snapshot, std::string_view param = {});

// "YYYY-MM-DD HH:MM:SS TZ" in local time, as PgBouncer prints connect_time.
std::string format_timestamp(std::int64_t unix_us);

}  // namespace pgcohere::admin
