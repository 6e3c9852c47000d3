"""Runs after every other client suite in the session (pytest collects this folder last): the
shared gateway's whole log, from all the EC2 client tests above, must hold no secret."""

import re


def test_no_secret_in_gateway_log(gateway, gateway_log, secrets_used, user):
    log = re.sub(r"\x1b\[[0-9;]*m", "", gateway_log())
    # The log is the one these tests produced (request lines name the access key, never a secret).
    assert "ec2 request" in log and user["access_key"] in log, log[-2000:]
    store_key = (gateway["workdir"] / "store.key").read_text().strip()
    secrets = set(secrets_used) | {store_key}
    leaked = sorted(s for s in secrets if s and s in log)
    assert not leaked, "%d secret(s) found in the gateway log" % len(leaked)
    # Nor the signatures that would let someone replay a request.
    assert "Signature=" not in log and "X-Amz-Signature" not in log
