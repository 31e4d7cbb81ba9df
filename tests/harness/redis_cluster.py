"""A real Redis Cluster on loopback for tests: N primaries (no replicas), each its own
redis-server process with cluster mode on, joined with `redis-cli --cluster create`."""
import os
import shutil
import signal
import subprocess

from harness.servers import RedisServer, free_port, wait_until


class RedisCluster:
    def __init__(self, base_dir, primaries=3):
        self.dir = base_dir
        self.nodes = []
        for _ in range(primaries):
            port = free_port()
            node_dir = os.path.join(base_dir, f"node-{port}")
            # The bus port defaults to port+10000, which may not exist: pick it too.
            self.nodes.append(RedisServer(node_dir, port=port, extra_args=[
                "--cluster-enabled", "yes", "--cluster-config-file", os.path.join(node_dir, "nodes.conf"),
                "--cluster-port", str(free_port()), "--cluster-node-timeout", "2000"]))

    @property
    def seeds(self):
        return [f"127.0.0.1:{n.port}" for n in self.nodes]

    def start(self):
        for n in self.nodes:
            n.start()
        subprocess.run(["redis-cli", "--cluster", "create", *self.seeds, "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        wait_until(self._ok, timeout=30, what="cluster_state:ok on every node")
        return self

    def _ok(self):
        for n in self.nodes:
            info = n.client().execute_command("CLUSTER", "INFO").decode()
            if "cluster_state:ok" not in info:
                return False
        return True

    def client(self):
        import redis.cluster
        return redis.cluster.RedisCluster(host="127.0.0.1", port=self.nodes[0].port)

    def node_for_slot(self, slot):
        """The RedisServer that owns `slot` now."""
        for start, end, master, *_ in self.nodes[0].client().execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                port = master[1]
                return next(n for n in self.nodes if n.port == port)
        raise KeyError(slot)

    def node_id(self, node):
        return node.client().execute_command("CLUSTER", "MYID").decode()

    def stop(self):
        for n in self.nodes:
            n.kill(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)
