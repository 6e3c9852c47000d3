#!/usr/bin/env python3
"""Sign a SOAP 1.1 envelope the way WS-Security X.509 clients do (BinarySecurityToken, exclusive
C14N, references to the Body and the wsu:Timestamp by wsu:Id), using xmlsec (libxmlsec1), an
implementation independent of the gateway's verifier.

Used by the Rust tests (tests/soap_wssec.rs) to make signed fixtures at test time:

  wssign.py --key k.pem --cert c.pem --body '<ns0:DescribeInstances xmlns:ns0="...">...'
            [--sig rsa-sha1|rsa-sha256] [--digest sha1|sha256] [--created-offset SECONDS]
            [--expires-in SECONDS] [--no-timestamp] [--no-sign-body] [--no-sign-timestamp]
            [--no-expires]

Writes the signed envelope to stdout.
"""
import argparse
import base64
import datetime
import sys

import xmlsec
from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
B64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def build(args):
    env = etree.Element(etree.QName(SOAP, "Envelope"), nsmap={"soap-env": SOAP})
    header = etree.SubElement(env, etree.QName(SOAP, "Header"))
    sec = etree.SubElement(header, etree.QName(WSSE, "Security"), nsmap={"wsse": WSSE, "wsu": WSU})
    body = etree.SubElement(env, etree.QName(SOAP, "Body"), nsmap={"wsu": WSU})
    body.set(etree.QName(WSU, "Id"), "id-body")
    body.append(etree.fromstring(args.body))

    with open(args.cert, "rb") as f:
        pem = f.read()
    der = base64.b64decode(b"".join(l for l in pem.splitlines() if l and not l.startswith(b"-----")))
    bst = etree.SubElement(sec, etree.QName(WSSE, "BinarySecurityToken"))
    bst.set(etree.QName(WSU, "Id"), "id-cert")
    bst.set("ValueType", X509V3)
    bst.set("EncodingType", B64)
    bst.text = base64.b64encode(der).decode()

    ts = None
    if not args.no_timestamp:
        now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=args.created_offset)
        ts = etree.SubElement(sec, etree.QName(WSU, "Timestamp"))
        ts.set(etree.QName(WSU, "Id"), "id-ts")
        etree.SubElement(ts, etree.QName(WSU, "Created")).text = iso(now)
        if not args.no_expires:
            exp = now + datetime.timedelta(seconds=args.expires_in)
            etree.SubElement(ts, etree.QName(WSU, "Expires")).text = iso(exp)

    sig_alg = {"rsa-sha1": xmlsec.Transform.RSA_SHA1, "rsa-sha256": xmlsec.Transform.RSA_SHA256}[args.sig]
    digest = {"sha1": xmlsec.Transform.SHA1, "sha256": xmlsec.Transform.SHA256}[args.digest]
    sig = xmlsec.template.create(env, xmlsec.Transform.EXCL_C14N, sig_alg)
    sec.insert(0, sig)
    targets = []
    if not args.no_sign_body:
        targets.append(body)
    if ts is not None and not args.no_sign_timestamp:
        targets.append(ts)
    for t in targets:
        ref = xmlsec.template.add_reference(sig, digest, uri="#" + t.get(etree.QName(WSU, "Id")))
        xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
    ki = xmlsec.template.ensure_key_info(sig)
    str_el = etree.SubElement(ki, etree.QName(WSSE, "SecurityTokenReference"))
    r = etree.SubElement(str_el, etree.QName(WSSE, "Reference"))
    r.set("URI", "#id-cert")
    r.set("ValueType", X509V3)

    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_file(args.key, xmlsec.KeyFormat.PEM)
    ctx.register_id(body, "Id", WSU)
    if ts is not None:
        ctx.register_id(ts, "Id", WSU)
    ctx.register_id(bst, "Id", WSU)
    ctx.sign(sig)
    return etree.tostring(env)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--sig", default="rsa-sha1")
    p.add_argument("--digest", default="sha1")
    p.add_argument("--created-offset", type=int, default=0)
    p.add_argument("--expires-in", type=int, default=300)
    p.add_argument("--no-timestamp", action="store_true")
    p.add_argument("--no-expires", action="store_true")
    p.add_argument("--no-sign-body", action="store_true")
    p.add_argument("--no-sign-timestamp", action="store_true")
    args = p.parse_args()
    sys.stdout.buffer.write(build(args))


if __name__ == "__main__":
    main()
