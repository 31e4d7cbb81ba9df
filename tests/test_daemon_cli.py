"""pgcohered's command line and lifecycle: help, version, config errors with file:line,
graceful stop on SIGTERM, SIGHUP reload that keeps the old config when the new one is bad."""
import signal
import subprocess

from harness.servers import DAEMON_BIN, Daemon, free_port, wait_until


def run(*args):
    return subprocess.run([DAEMON_BIN, *args], capture_output=True, text=True, timeout=30)


def test_help_and_version():
    out = run("--help")
    assert out.returncode == 0
    assert "--config" in out.stdout
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("pgcohered ")


def test_missing_config_is_a_usage_error():
    out = run()
    assert out.returncode == 2
    assert "no configuration file given" in out.stderr


def test_bad_config_is_refused_with_file_line_and_reason(tmp_path):
    path = tmp_path / "bad.ini"
    path.write_text("[pgbouncer]\nauth_type = trust\nlisten_port = 6432\nmax_client_conn = lots\n")
    out = run("--config", str(path))
    assert out.returncode == 1
    assert f"{path}:4: max_client_conn: expected an integer, got 'lots'" in out.stderr
    out = run("--config", str(tmp_path / "absent.ini"))
    assert out.returncode == 1 and "absent.ini: cannot open file" in out.stderr


def test_unchanged_pgbouncer_ini_is_accepted(tmp_path):
    path = tmp_path / "pgbouncer.ini"
    path.write_text(
        "[databases]\nappdb = host=127.0.0.1 port=5432 dbname=appdb\n"
        "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 6432\nauth_type = md5\n"
        "auth_file = /etc/pgbouncer/userlist.txt\npool_mode = transaction\nmax_client_conn = 10000\n"
        "default_pool_size = 20\nserver_tls_sslmode = prefer\ntcp_defer_accept = 45\nlogfile = /var/log/pgbouncer.log\n")
    out = run("--check", str(path))
    assert out.returncode == 0, out.stderr
    assert "tcp_defer_accept: not supported by pgcohered, ignored" in out.stderr
    assert "server_tls_sslmode" not in out.stderr  # acted on, not ignored


def test_check_prints_the_effective_configuration_with_secrets_masked(tmp_path):
    path = tmp_path / "pgcohered.ini"
    path.write_text(
        "[databases]\nappdb = host=127.0.0.1 port=5432 dbname=appdb user=app password=hunter2\n"
        "[pgcohered]\nlisten_port = 6500\nauth_type = trust\n"
        "[redis]\nurl = redis://:s3cret@127.0.0.1:6379/0\n"
        f"[invalidation]\nsecret_file = {tmp_path}/secret\n")
    out = run("--check", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert "hunter2" not in out.stdout + out.stderr and "s3cret" not in out.stdout + out.stderr
    assert "appdb = dbname=appdb host=127.0.0.1 password=******** port=5432 user=app\n" in out.stdout
    assert "\nlisten_port = 6500\n" in out.stdout            # from the file
    assert "\ndefault_pool_size = 20\n" in out.stdout        # a default
    assert "\nurl = redis://:********@127.0.0.1:6379/0\n" in out.stdout
    assert f"\nsecret_file = {tmp_path}/secret\n" in out.stdout  # a path, not the secret
    assert out.stdout.rstrip().endswith(f"{path}: configuration is valid")


def test_sigterm_stops_and_sighup_reloads(tmp_path):
    port = free_port()
    d = Daemon(str(tmp_path), f"[pgcohered]\nauth_type = trust\nlisten_port = {port}\n", port).start()
    try:
        with open(d.config_path, "w") as f:
            f.write(f"[pgcohered]\nauth_type = trust\nlisten_port = {port}\ndefault_pool_size = 7\n")
        d.kill(signal.SIGHUP)
        wait_until(lambda: "default_pool_size: '20' -> '7'" in d.log(), what="reload logged")
        with open(d.config_path, "a") as f:
            f.write("bogus line\n")
        d.kill(signal.SIGHUP)
        wait_until(lambda: "reload refused, keeping the running configuration" in d.log(), what="reload refused")
        assert f"{d.config_path}:5: expected 'key = value'" in d.log()
        assert d.proc.poll() is None
    finally:
        d.stop()
    assert d.proc.returncode == 0


def test_sigterm_stops_a_daemon_with_pools_and_invalidation(pg, new_db, daemon_factory):
    """A daemon that holds server connections and a LISTEN connection exits on SIGTERM."""
    import psycopg
    d = daemon_factory(databases=[new_db], extra_ini="[pgcohered]\npool_mode = transaction\n")
    with psycopg.connect(f"host=127.0.0.1 port={d.port} dbname={new_db} user=postgres", autocommit=True) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    wait_until(lambda: "listening on" in d.log(), what="LISTEN connection up")
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(timeout=10)
    assert d.proc.returncode == 0, d.log()


def test_open_files_limit_is_raised_for_max_client_conn(tmp_path):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    port = free_port()
    path = tmp_path / "p.ini"
    path.write_text(f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
                    "max_client_conn = 3000\n")

    def low_soft_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    log = tmp_path / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen([DAEMON_BIN, "--config", str(path)], stdout=out, stderr=out, preexec_fn=low_soft_limit)
    try:
        wait_until(lambda: "ready" in log.read_text(), timeout=15, what="daemon ready")
        with open(f"/proc/{proc.pid}/limits") as f:
            line = next(ln for ln in f if ln.startswith("Max open files"))
        raised = int(line.split()[3])
        if hard == resource.RLIM_INFINITY or hard >= 4024:
            assert raised >= 4024
        else:  # cannot go past the hard limit: it says so
            assert raised == hard and "open files limit" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
