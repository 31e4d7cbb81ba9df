"""The pgcohere sandbox: a private PostgreSQL 15 (pgcohere preloaded), a private Redis
and pgcohered, all on loopback. Stays in the foreground; Ctrl-C or SIGTERM stops every
process it started and removes its data directory."""
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness.servers import Daemon, PgCluster, RedisServer, free_port, make_secret_file, port_open, temp_dir  # noqa: E402

PREFERRED = {"postgres": 15432, "redis": 16379, "pgcohered": 16432, "metrics": 19127}


def pick(name):
    port = int(os.environ.get(f"SANDBOX_{name.upper()}_PORT", PREFERRED[name]))
    return port if not port_open(port) else free_port()


class Stop(Exception):
    pass


def on_signal(signo, _frame):
    raise Stop()


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    base = temp_dir("pgcohere-sandbox-")
    pg = redis = daemon = None
    try:
        secret = make_secret_file(base)
        pg = PgCluster(os.path.join(base, "pg"), port=pick("postgres"), preload=True, secret_file=secret).init().start()
        pg.psql("CREATE DATABASE appdb")
        pg.psql("CREATE EXTENSION pgcohere", dbname="appdb")
        redis = RedisServer(os.path.join(base, "redis"), port=pick("redis")).start()
        port, metrics = pick("pgcohered"), pick("metrics")
        config = "\n".join([
            "[databases]",
            f"appdb = host=127.0.0.1 port={pg.port} dbname=appdb user=postgres",
            "[pgcohered]",
            "listen_addr = 127.0.0.1", f"listen_port = {port}", "pool_mode = transaction",
            "auth_type = trust", "admin_users = postgres", f"metrics_port = {metrics}",
            "[redis]", f"url = {redis.url}",
            "[invalidation]", f"secret_file = {secret}", ""])
        daemon = Daemon(os.path.join(base, "daemon"), config, port).start()
        print(f"""
pgcohere sandbox is running (data in {base}).

  database (through pgcohered):  psql "host=127.0.0.1 port={port} dbname=appdb user=postgres"
  database (direct):             psql "host=127.0.0.1 port={pg.port} dbname=appdb user=postgres"
  redis:                         redis-cli -p {redis.port}
  admin console:                 psql "host=127.0.0.1 port={port} dbname=pgcohere user=postgres" -c 'SHOW POOLS'
  metrics:                       curl http://127.0.0.1:{metrics}/metrics
  daemon config / log:           {daemon.config_path} / {daemon.log_path}

Try it (in another terminal):
  psql "host=127.0.0.1 port={port} dbname=appdb user=postgres" <<'SQL'
  CREATE TABLE users (id int PRIMARY KEY, name text);
  INSERT INTO users VALUES (42, 'Ada');
  SELECT pgcohere.watch('users', ARRAY['user:{{id}}']);
  SQL
  redis-cli -p {redis.port} SET user:42 cached-ada
  psql "host=127.0.0.1 port={port} dbname=appdb user=postgres" -c "UPDATE users SET name = 'Grace' WHERE id = 42"
  redis-cli -p {redis.port} EXISTS user:42      # -> 0: the committed update purged it

Ctrl-C stops everything.
""", flush=True)
        while True:
            if daemon.proc.poll() is not None:
                print(f"pgcohered exited ({daemon.proc.returncode}); its log:\n{daemon.log()}", file=sys.stderr)
                return 1
            time.sleep(0.5)
    except Stop:
        print("\nstopping the sandbox...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for stop in (daemon and daemon.stop, redis and redis.stop, pg and pg.remove):
            if not stop:
                continue
            try:
                stop()
            except Exception as e:  # keep stopping the others
                print(f"sandbox: {e}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
