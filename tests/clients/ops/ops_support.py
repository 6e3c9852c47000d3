"""Helpers for the operations suite (tests/clients/ops): gateways and simulators started per test with their own
configuration (the session `gateway` fixture cannot be reconfigured)."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time

REPO = pathlib.Path(__file__).resolve().parents[3]
BIN = os.environ.get("EC2BRIDGE_BIN", str(REPO / "target" / "debug" / "ec2bridge"))
# The binary built without the `sim` feature (scripts/test builds it next to the default one).
NOSIM_BIN = os.environ.get("EC2BRIDGE_NOSIM_BIN", str(pathlib.Path(BIN).parent / "ec2bridge-nosim"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on port %d after %d s" % (port, timeout))


class Proc:
    """A child process with its log file; stopped at the end of the test."""

    def __init__(self, args, env, workdir, name):
        self.log_path = workdir / (name + ".log")
        self.out_path = workdir / (name + ".out")
        self._log = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=self._log, env=env, cwd=str(workdir))

    def log(self):
        return self.log_path.read_text(errors="replace")

    def out(self):
        return self.out_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self._out.close()


class Sim:
    """`ec2bridge sim` on a fixed port, keys kept in a state directory so a restart keeps them."""

    def __init__(self, workdir, port=None, seed=None):
        self.workdir = workdir
        self.seed = seed
        self.port = port or free_port()
        self.endpoint = "http://127.0.0.1:%d/client/api" % self.port
        self.state = workdir / "sim-state"
        self.proc = None
        self.users = []

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("EC2BRIDGE_")}
        env.update(RUST_BACKTRACE="0", NO_COLOR="1")
        seed = ["--seed", str(self.seed)] if self.seed else []
        self.proc = Proc([BIN, "sim", "--listen", "127.0.0.1:%d" % self.port, "--fast",
                          "--state-dir", str(self.state)] + seed, env, self.workdir, "sim-%d" % time.time_ns())
        deadline = time.time() + 60
        while True:
            lines = [ln for ln in self.proc.out().splitlines() if ln.startswith("account=")]
            if lines and "listening" in self.proc.out():
                break
            if self.proc.proc.poll() is not None or time.time() > deadline:
                raise AssertionError("simulator did not start:\n" + self.proc.log())
            time.sleep(0.05)
        self.users = [dict(kv.split("=", 1) for kv in ln.split()) for ln in lines]
        wait_port(self.port)
        return self

    def admin(self):
        return next(u for u in self.users if u["admin"] == "true")

    def user(self):
        return next(u for u in self.users if u["admin"] != "true")

    def stop(self):
        # The simulator stops on SIGINT (Ctrl-C).
        self.proc.stop(signal.SIGINT)


class Gateway:
    """`ec2bridge serve` with a config file; `info` is the ready file."""

    def __init__(self, workdir, config_text="", env=None, binary=None, args=()):
        self.workdir = workdir
        cfg = workdir / ("gateway-%d.toml" % time.time_ns())
        cfg.write_text(config_text)
        ready = workdir / ("ready-%d.json" % time.time_ns())
        e = {k: v for k, v in os.environ.items() if not k.startswith("EC2BRIDGE_")}
        e.update({
            "EC2BRIDGE_STORE_URL": "sqlite://%s" % (workdir / "store.db"),
            "EC2BRIDGE_STORE_KEY_FILE": str(workdir / "store.key"),
            "EC2BRIDGE_SIMULATOR_STATE_DIR": "",
            "XDG_DATA_HOME": str(workdir / "data"),
            "EC2BRIDGE_LOG": "info",
            "EC2BRIDGE_ADMIN_LISTEN": "127.0.0.1:0",
            "RUST_BACKTRACE": "0",
        })
        e.update(env or {})
        self.proc = Proc([binary or BIN, "serve", "--config", str(cfg), "--listen", "127.0.0.1:0",
                          "--ready-file", str(ready)] + list(args), e, workdir, "gateway-%d" % time.time_ns())
        deadline = time.time() + 90
        self.info = None
        while self.info is None:
            if self.proc.proc.poll() is not None:
                raise AssertionError("ec2bridge serve exited (%s):\n%s" % (self.proc.proc.returncode, self.proc.log()))
            if time.time() > deadline:
                raise AssertionError("ec2bridge serve not ready:\n" + self.proc.log())
            try:
                self.info = json.loads(ready.read_text())
            except (OSError, ValueError):
                time.sleep(0.05)
        self.endpoint = self.info["endpoint"]
        self.admin = self.info.get("admin_endpoint")

    def metrics(self):
        """{(name, frozenset(labels)): value} from /metrics."""
        import requests
        text = requests.get(self.admin + "/metrics", timeout=10).text
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, value = line.rsplit(" ", 1)
            if "{" in name_labels:
                name, labels = name_labels.split("{", 1)
                pairs = frozenset(tuple(kv.split("=", 1)) for kv in labels.rstrip("}").split(",")) if labels != "}" else frozenset()
                pairs = frozenset((k, v.strip('"')) for k, v in pairs)
            else:
                name, pairs = name_labels, frozenset()
            out[(name, pairs)] = float(value)
        return out

    def metric(self, name, **labels):
        return self.metrics().get((name, frozenset(labels.items())), 0.0)

    def log(self):
        return self.proc.log()

    def stop(self):
        self.proc.stop()


