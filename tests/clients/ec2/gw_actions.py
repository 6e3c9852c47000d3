"""Which EC2 actions the gateway under test supports, read from the binary itself
(`ec2bridge mappings list`), so that a client test of an area another branch is still adding is
skipped with a reason — and runs by itself as soon as that area is merged."""
import functools
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
BIN = os.environ.get("EC2BRIDGE_BIN", str(REPO / "target" / "debug" / "ec2bridge"))

# Where each area is being added (for the skip message only).
AREA = {
    "KeyPair": "key pairs (branch secgroups)",
    "SecurityGroup": "security groups (branch secgroups)",
    "Volume": "volumes (branch vols)",
    "Snapshot": "snapshots (branch vols)",
    "Address": "Elastic IPs (branch addrtags)",
    "Tags": "tags (branch addrtags)",
    "Image": "images (branch images)",
}


@functools.lru_cache(maxsize=1)
def supported():
    out = subprocess.run([BIN, "mappings", "list"], capture_output=True, text=True, timeout=60, check=True).stdout
    return frozenset(line.split()[0] for line in out.splitlines() if line.strip())


def need(*actions):
    """Skip the calling test unless the gateway supports every one of `actions`."""
    missing = [a for a in actions if a not in supported()]
    if missing:
        area = next((v for k, v in AREA.items() if any(k in a for a in missing)), "another branch")
        pytest.skip("gateway does not support %s yet: %s not merged" % (", ".join(missing), area))
