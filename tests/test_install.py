"""make install puts the daemon, the systemd unit (paths set for PREFIX), the example ini,
the alert rules, the dashboard and the docs in place, and make uninstall takes exactly
those away; the unit passes systemd-analyze verify; and where systemd runs, the unit
starts, reloads and stops the daemon for real."""
import os
import shutil
import socket
import subprocess
import time

import pytest

from harness.servers import free_port, temp_dir, wait_until

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHARED = ["pgcohered.ini", "systemd/pgcohered.service", "prometheus/pgcohere-rules.yml",
          "prometheus/pgcohere-rules.test.yml", "grafana/pgcohere-dashboard.json", "docs/operations.md",
          "docs/metrics.md", "docs/README.md"]


def make(*targets, prefix, destdir=""):
    r = subprocess.run(["make", "-s", "-C", REPO, *targets, f"PREFIX={prefix}", f"DESTDIR={destdir}"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def installed():
    """A staged `make install` of the daemon and its files into a private PREFIX (the
    extension's half writes into PostgreSQL and is the installcheck's business)."""
    root = temp_dir("pgcohere-install-")
    prefix = os.path.join(root, "usr")
    make("install-daemon", "install-share", prefix=prefix)
    yield prefix
    shutil.rmtree(root, ignore_errors=True)


def files_under(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


def test_install_puts_the_daemon_unit_ini_rules_dashboard_and_docs_under_the_prefix(installed):
    assert os.access(os.path.join(installed, "bin", "pgcohered"), os.X_OK)
    share = os.path.join(installed, "share", "pgcohere")
    for f in SHARED:
        assert os.path.isfile(os.path.join(share, f)), f
    with open(os.path.join(share, "systemd", "pgcohered.service")) as f:
        unit = f.read()
    assert f"ExecStart={installed}/bin/pgcohered --config /etc/pgcohere/pgcohered.ini" in unit
    assert f"ExecStartPre={installed}/bin/pgcohered --check" in unit
    assert f"Documentation=file://{share}/docs/operations.md" in unit
    assert "/usr/local/" not in unit


def test_uninstall_removes_what_install_put_and_keeps_what_an_operator_added():
    root = temp_dir("pgcohere-uninstall-")
    try:
        make("install-daemon", "install-share", prefix="/usr/local", destdir=root)
        share = os.path.join(root, "usr", "local", "share", "pgcohere")
        assert files_under(share)
        make("uninstall-daemon", prefix="/usr/local", destdir=root)
        assert files_under(root) == [], files_under(root)
        assert not os.path.exists(share)

        make("install-daemon", "install-share", prefix="/usr/local", destdir=root)
        with open(os.path.join(share, "prometheus", "local-overrides.yml"), "w") as f:
            f.write("groups: []\n")
        make("uninstall-daemon", prefix="/usr/local", destdir=root)
        assert files_under(root) == ["usr/local/share/pgcohere/prometheus/local-overrides.yml"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (Debian package systemd)")
def test_the_installed_unit_passes_systemd_analyze_verify(installed):
    unit = os.path.join(installed, "share", "pgcohere", "systemd", "pgcohered.service")
    r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # Warnings (an unknown directive, a bad value ignored) also fail the test.
    assert not r.stderr.strip(), r.stderr


def test_systemd_analyze_verify_catches_a_broken_unit(installed, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze missing (Debian package systemd)")
    with open(os.path.join(installed, "share", "pgcohere", "systemd", "pgcohered.service")) as f:
        unit = f.read()
    broken = tmp_path / "pgcohered.service"
    broken.write_text(unit.replace("Type=notify", "Type=notifyy"))
    r = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert "Failed to parse service type" in r.stderr


def systemd_is_running():
    # sd_booted(): systemd is PID 1 exactly when this directory exists.
    return os.path.isdir("/run/systemd/system")


def systemctl(*args, check=True):
    r = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, f"systemctl {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


@pytest.mark.skipif(not systemd_is_running(),
                    reason="systemd is not PID 1 here (no /run/systemd/system: a container without an init "
                           "system), so no unit can be started; systemd-analyze verify still checks the unit")
@pytest.mark.skipif(os.geteuid() != 0, reason="starting a system unit needs root")
def test_systemd_starts_reloads_and_stops_the_service(installed):
    name = f"pgcohered-test-{os.getpid()}"
    unit_path = f"/run/systemd/system/{name}.service"
    dropin_dir = f"/run/systemd/system/{name}.service.d"
    work = temp_dir("pgcohere-systemd-")
    port = free_port()
    config = os.path.join(work, "pgcohered.ini")
    with open(config, "w") as f:
        f.write(f"[pgcohered]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n")
    binary = os.path.join(installed, "bin", "pgcohered")
    shutil.copy(os.path.join(installed, "share", "pgcohere", "systemd", "pgcohered.service"), unit_path)
    os.makedirs(dropin_dir, exist_ok=True)
    # The shipped unit as it is, but as root (no pgcohere user here) and with a config file
    # in this test's directory, which must be visible (no private /tmp).
    with open(os.path.join(dropin_dir, "test.conf"), "w") as f:
        f.write(f"[Service]\nUser=\nGroup=\nPrivateTmp=no\nExecStartPre=\n"
                f"ExecStartPre={binary} --check --config {config}\nExecStart=\nExecStart={binary} --config {config}\n")
    try:
        systemctl("daemon-reload")
        systemctl("start", name)  # Type=notify: returns once READY=1 arrived
        assert systemctl("is-active", name).stdout.strip() == "active"
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

        with open(config, "a") as f:
            f.write("default_pool_size = 7\n")
        systemctl("reload", name)
        wait_until(lambda: "default_pool_size: '20' -> '7'" in subprocess.run(
            ["journalctl", "-u", name, "--no-pager", "-o", "cat"], capture_output=True, text=True).stdout,
            timeout=20, what="the reload in the journal")
        assert systemctl("is-active", name).stdout.strip() == "active"

        systemctl("stop", name)
        assert systemctl("is-active", name, check=False).stdout.strip() == "inactive"
        status = systemctl("show", "-p", "ExecMainStatus", "--value", name).stdout.strip()
        assert status == "0", f"pgcohered exited with {status}"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        systemctl("stop", name, check=False)
        shutil.rmtree(dropin_dir, ignore_errors=True)
        if os.path.exists(unit_path):
            os.unlink(unit_path)
        systemctl("daemon-reload", check=False)
        shutil.rmtree(work, ignore_errors=True)
