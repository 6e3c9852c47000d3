"""Fixtures of the operations suite; the helpers are in ops_support.py."""
import pathlib
import sys
import tempfile

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


@pytest.fixture
def workdir():
    return pathlib.Path(tempfile.mkdtemp(prefix="ec2bridge-ops-"))


@pytest.fixture
def procs():
    """Everything a test started, stopped afterwards (in reverse order)."""
    started = []
    yield started
    for p in reversed(started):
        try:
            p.stop()
        except Exception:  # noqa: BLE001 - already stopped by the test
            pass
