"""A private PostgreSQL cluster whose pg_hba.conf asks for passwords (the shared test
cluster trusts everyone, so a pooler's server logins would never be checked there), with
roles whose secrets are md5 hashes and SCRAM secrets, an auth_user, and an auth_query
function that counts its calls; and a pgcohered in front of it without Redis."""
import os

import psycopg

from harness.servers import Daemon, PgCluster, _pg_user, free_port

PASSWORDS = {"md5_user": "md5-pw-1", "scram_user": "scram-pw-2", "pgc_auth": "auth-pw-3", "admin": "admin-pw-4"}

HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 md5
"""

LOOKUP = """
CREATE TABLE lookup_log (usr text, at timestamptz DEFAULT now());
CREATE FUNCTION pgc_lookup(u text, OUT usename name, OUT passwd text) RETURNS record
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  INSERT INTO public.lookup_log (usr) VALUES (u);
  SELECT s.usename, s.passwd INTO usename, passwd FROM pg_catalog.pg_shadow s WHERE s.usename = u;
END $$;
REVOKE ALL ON FUNCTION pgc_lookup(text) FROM public;
GRANT EXECUTE ON FUNCTION pgc_lookup(text) TO pgc_auth;
"""

AUTH_QUERY = "SELECT usename, passwd FROM pgc_lookup($1)"


def make_cluster(base_dir):
    """Started cluster with databases app (the lookup function, a table) and other (none)."""
    pg = PgCluster(base_dir, preload=False).init()
    hba = os.path.join(pg.datadir, "pg_hba.conf")
    with open(hba, "w") as f:
        f.write(HBA)
    ids = _pg_user()
    if ids:
        os.chown(hba, *ids)
    pg.start()
    with pg.connect() as c:
        c.execute("SET password_encryption = 'md5'")
        c.execute(f"CREATE ROLE md5_user LOGIN PASSWORD '{PASSWORDS['md5_user']}'")
        c.execute(f"CREATE ROLE pgc_auth LOGIN PASSWORD '{PASSWORDS['pgc_auth']}'")
        c.execute("SET password_encryption = 'scram-sha-256'")
        c.execute(f"CREATE ROLE scram_user LOGIN PASSWORD '{PASSWORDS['scram_user']}'")
        c.execute("CREATE ROLE nopw_user LOGIN")
        c.execute("CREATE DATABASE app")
        c.execute("CREATE DATABASE other")
    with pg.connect("app") as c:
        c.execute(LOOKUP)
    return pg


def lookups(pg, dbname="app"):
    with pg.connect(dbname) as c:
        return c.execute("SELECT count(*) FROM lookup_log").fetchone()[0]


def write_userlist(directory, entries):
    path = os.path.join(directory, f"userlist-{free_port()}.txt")
    with open(path, "w") as f:
        for user, secret in entries.items():
            f.write(f'"{user}" "{secret}"\n')
    return path


def start_daemon(workdir, pg, databases=None, **settings):
    """pgcohered for `pg`: [databases] entries (name -> parameters, default app and other
    without a forced user), [pgcohered] settings on top of transaction pooling."""
    port = free_port()
    if databases is None:
        databases = {"app": "dbname=app", "other": "dbname=other"}
    lines = ["[databases]"]
    for name, params in databases.items():  # an entry's own port= wins
        port_param = "" if "port=" in params else f"port={pg.port} "
        lines.append(f"{name} = host=127.0.0.1 {port_param}{params}")
    base = {"listen_addr": "127.0.0.1", "listen_port": port, "pool_mode": "transaction", "admin_users": "admin",
            "log_connections": 0}
    base.update(settings)
    lines.append("[pgcohered]")
    lines += [f"{k} = {v}" for k, v in base.items()]
    lines += ["[invalidation]", "enabled = 0"]
    d = Daemon(os.path.join(workdir, "daemon"), "\n".join(lines) + "\n", port)
    STARTED.append(d)
    return d.start()


# Daemons start_daemon() started: conftest.py's stop_auth_daemons stops them after each test.
STARTED = []


def dsn(d, dbname, user, password=None):
    out = f"host=127.0.0.1 port={d.port} dbname={dbname} user={user}"
    if password is not None:
        out += f" password={password}"
    return out


def current_user(d, dbname, user, password):
    with psycopg.connect(dsn(d, dbname, user, password), autocommit=True) as c:
        return c.execute("select current_user").fetchone()[0]
