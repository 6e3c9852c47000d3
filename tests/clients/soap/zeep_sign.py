#!/usr/bin/env python3
"""zeep + xmlsec helpers for the SOAP tests: a wsu:Timestamp plugin (zeep's BinarySignature signs
the Body and, when present, the Timestamp, but does not add one) and a command that prints the
envelope zeep would send, for the Rust verifier tests:

  zeep_sign.py --wsdl W --key K --cert C --op DescribeInstances --args '{"instancesSet": ...}'
"""
import argparse
import datetime
import json
import sys

from lxml import etree
from zeep import Client
from zeep.wsse.signature import BinarySignature
from zeep.wsse.utils import WSU, get_security_header


class Timestamp:
    """Adds wsu:Timestamp (Created = now + offset, Expires = Created + ttl) to wsse:Security."""

    def __init__(self, offset=0, ttl=300):
        self.offset, self.ttl = offset, ttl

    def apply(self, envelope, headers):
        sec = get_security_header(envelope)
        now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=self.offset)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        sec.append(WSU.Timestamp(WSU.Created(now.strftime(fmt)),
                                 WSU.Expires((now + datetime.timedelta(seconds=self.ttl)).strftime(fmt))))
        return envelope, headers

    def verify(self, envelope):
        return envelope


class SignRequests:
    """Timestamp + BinarySignature on requests. Responses are not signed (EC2's SOAP answers were
    not either, and ec2-api-tools do not check), so nothing is verified on the way back; zeep's
    list form of `wsse` cannot express that."""

    def __init__(self, plugins):
        self.plugins = plugins

    def apply(self, envelope, headers):
        for p in self.plugins:
            envelope, headers = p.apply(envelope, headers)
        return envelope, headers

    def verify(self, envelope):
        return envelope


def wsse(key, cert, offset=0, ttl=300, timestamp=True, **kw):
    sig = BinarySignature(key, cert, **kw)
    return SignRequests([Timestamp(offset, ttl), sig] if timestamp else [sig])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--wsdl", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--op", required=True)
    p.add_argument("--args", default="{}")
    p.add_argument("--sha256", action="store_true")
    a = p.parse_args()
    kw = {}
    if a.sha256:
        import xmlsec
        kw = {"signature_method": xmlsec.Transform.RSA_SHA256, "digest_method": xmlsec.Transform.SHA256}
    c = Client(a.wsdl, wsse=wsse(a.key, a.cert, **kw))
    node = c.create_message(c.service, a.op, **json.loads(a.args))
    sys.stdout.buffer.write(etree.tostring(node))


if __name__ == "__main__":
    main()
