"""Start the ec2bridge CloudStack simulator for the client suites in this directory.

The binary comes from $EC2BRIDGE_BIN (default: <repo>/target/debug/ec2bridge). It runs
`ec2bridge sim --listen 127.0.0.1:<free port> --seed seeds/default.toml --fast` and prints one
line per seeded user with its keys, which the fixtures below read.
"""

import os
import queue
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SEED = REPO / "seeds" / "default.toml"

USER_LINE = re.compile(
    r"^account=(?P<account>\S+) domain=(?P<domain>\S+) user=(?P<user>\S+) admin=(?P<admin>\S+) "
    r"apikey=(?P<apikey>\S+) secretkey=(?P<secretkey>\S+)$"
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    def __init__(self, proc, port, users):
        self.proc = proc
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}/client/api"
        self.users = users  # account -> {"apikey", "secretkey", "domain", "admin"}


def start_sim(seed=SEED, extra_args=()):
    binary = os.environ.get("EC2BRIDGE_BIN", str(REPO / "target" / "debug" / "ec2bridge"))
    if not os.path.exists(binary):
        pytest.fail(f"simulator binary not found at {binary} (build it or set EC2BRIDGE_BIN)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "sim", "--listen", f"127.0.0.1:{port}", "--seed", str(seed), "--fast", *extra_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    users = {}
    listening = False
    deadline = time.time() + 30
    while time.time() < deadline and not (listening and {"admin", "alice", "bob"} <= users.keys()):
        try:
            line = lines.get(timeout=0.5).strip()
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if "listening on" in line:
            listening = True
        m = USER_LINE.match(line)
        if m:
            users[m["account"]] = {
                "apikey": m["apikey"],
                "secretkey": m["secretkey"],
                "domain": m["domain"],
                "admin": m["admin"] == "true",
            }
    if not listening or not users:
        proc.kill()
        pytest.fail("the simulator did not start")
    return Sim(proc, port, users)


@pytest.fixture(scope="module")
def sim():
    s = start_sim()
    yield s
    s.proc.terminate()
    try:
        s.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        s.proc.kill()
