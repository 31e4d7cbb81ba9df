"""`make run`'s sandbox: comes up, the printed demo works as printed, and SIGTERM stops
every process it started and removes its data directory."""
import os
import re
import signal
import subprocess
import sys

from harness.servers import REPO, free_port, port_open, wait_until


def test_sandbox_demo_and_clean_stop(tmp_path):
    env = dict(os.environ)
    ports = {name: free_port() for name in ("postgres", "redis", "pgcohered", "metrics")}
    for name, port in ports.items():
        env[f"SANDBOX_{name.upper()}_PORT"] = str(port)
    out_path = tmp_path / "sandbox.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "sandbox.py")],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(lambda: "Ctrl-C stops everything" in out_path.read_text() or proc.poll() is not None,
                   timeout=60, what="sandbox banner")
        banner = out_path.read_text()
        assert proc.poll() is None, banner
        base = re.search(r"data in (\S+)\)", banner).group(1)

        # Run the demo exactly as printed: the shell lines between "Try it" and "Ctrl-C".
        demo = banner.split("Try it (in another terminal):\n", 1)[1].split("\nCtrl-C", 1)[0]
        demo = "\n".join(line[2:] for line in demo.splitlines())
        script = demo.replace("redis-cli -p {0} EXISTS user:42".format(ports["redis"]),
                              "for i in $(seq 100); do [ $(redis-cli -p {0} EXISTS user:42) = 0 ] && "
                              "echo PURGED && break; sleep 0.05; done".format(ports["redis"]))
        result = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60)
        assert "PURGED" in result.stdout, result.stdout + result.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, out_path.read_text()
    for port in ports.values():
        assert not port_open(port), f"port {port} still open after the sandbox stopped"
    assert not os.path.exists(base)
