"""Helpers for the pooler's transport tests (TLS, Unix sockets): a private PostgreSQL
without the extension, a pgcohered in front of it with no Redis, certificates made with
openssl at test time, psql as a subprocess."""
import os
import subprocess

from harness.servers import PgCluster, _pg_user, temp_dir


def own_cluster(prefix, settings=None, hba_lines=None):
    """A PostgreSQL 15 cluster of its own (no pgcohere preload) with a database `app`;
    hba_lines replace pg_hba.conf (through hba_file, a setting like any other)."""
    base = temp_dir(prefix)
    settings = dict(settings or {})
    if hba_lines is not None:
        hba = os.path.join(base, "pg_hba.conf")
        with open(hba, "w") as f:
            f.write("\n".join(hba_lines) + "\n")
        give_to_postgres(hba)
        settings["hba_file"] = f"'{hba}'"
    pg = PgCluster(os.path.join(base, "pg"), preload=False, settings=settings).init().start()
    pg.base = base
    pg.psql("CREATE DATABASE app")
    return pg


def give_to_postgres(*paths, mode=None):
    """PostgreSQL runs as `postgres` when the tests run as root: its files must be its own
    (a private key must also be mode 0600)."""
    ids = _pg_user()
    for p in paths:
        if ids:
            os.chown(p, *ids)
        if mode is not None:
            os.chmod(p, mode)


def pooler_ini(port, pg, lines=(), host=None, db_options="", auth="trust", auth_file=None, listen_addr="127.0.0.1"):
    """pgcohered in front of database `app` of `pg` (no Redis, no invalidation); `lines` go
    into [pgcohered]."""
    out = ["[databases]", f"app = host={host or pg.host} port={pg.port} dbname=app {db_options}".rstrip(),
           "[pgcohered]", f"listen_addr = {listen_addr}", f"listen_port = {port}", f"auth_type = {auth}",
           "admin_users = admin", "pool_mode = transaction", "log_connections = 0"]
    if auth_file:
        out.append(f"auth_file = {auth_file}")
    out += list(lines)
    out += ["[invalidation]", "enabled = 0"]
    return "\n".join(out) + "\n"


def psql(dsn, sql, check=True):
    """psql -c sql; the CompletedProcess (stdout: unaligned, tuples only)."""
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql],
                          capture_output=True, text=True, timeout=30, check=check)


class Certs:
    """A directory of CAs and the certificates they sign (EC P-256: fast to make)."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], cwd=self.dir, check=True, capture_output=True)

    def ca(self, name):
        self._openssl("req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.chmod(self.path(f"{name}.key"), 0o600)
        return self.path(f"{name}.crt")

    def issue(self, name, ca, cn, names=("DNS:localhost", "IP:127.0.0.1")):
        """name.key and name.crt for `cn` with subjectAltName `names`, signed by CA `ca`."""
        ext = self.path(f"{name}.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if names:
                f.write("subjectAltName=" + ",".join(names) + "\n")
        self._openssl("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                      "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext)
        os.chmod(self.path(f"{name}.key"), 0o600)
        return self.path(f"{name}.crt"), self.path(f"{name}.key")
