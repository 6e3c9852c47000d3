"""The AWS SDK for JavaScript v3 suite (tests/clients/js, node's built-in test runner) against this
session's gateway. Skipped, saying why, when `node` or the installed SDK is missing (scripts/test
runs `npm ci` in tests/clients/js whenever node is present)."""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

JS_DIR = pathlib.Path(__file__).resolve().parents[1] / "js"


def test_aws_sdk_js_v3(gateway, user, secrets_used):
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed: the AWS SDK for JavaScript v3 suite needs node >= 18")
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "client-ec2").is_dir():
        pytest.skip("@aws-sdk/client-ec2 is not installed: run `npm ci --no-audit --no-fund` in %s" % JS_DIR)
    secrets_used.add("not-the-secret")  # the suite's bad-secret case
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "EC2BRIDGE_ENDPOINT": gateway["endpoint"],
        "EC2BRIDGE_REGION": gateway["region"],
        "EC2BRIDGE_ACCESS_KEY": user["access_key"],
        "EC2BRIDGE_SECRET_KEY": user["secret_key"],
        # network.test.mjs checks CloudStack's side with the same user's keys.
        "EC2BRIDGE_CLOUDSTACK_ENDPOINT": gateway["cloudstack_endpoint"],
        # No shared config/credentials or IMDS lookups from the developer's machine.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    p = subprocess.run([node, "--test", str(JS_DIR)], cwd=str(JS_DIR), env=env, capture_output=True, text=True,
                       timeout=300)
    report = p.stdout[-8000:] + p.stderr[-4000:]
    assert p.returncode == 0, report
    # node's TAP summary: every test ran and passed (none failed, skipped or cancelled).
    counts = dict(re.findall(r"^# (tests|pass|fail|cancelled|skipped) (\d+)$", p.stdout, re.M))
    assert int(counts.get("tests", 0)) >= 7 and counts.get("pass") == counts["tests"], (counts, report)
