"""The SOAP API as a WSDL client sees it: zeep 4 with xmlsec's BinarySignature (the way
ec2-api-tools sign with EC2_CERT / EC2_PRIVATE_KEY), against the real gateway + simulator.

Operations: DescribeImages, DescribeInstances, RunInstances, TerminateInstances, CreateKeyPair,
DescribeVolumes. Attacks (each a SOAP fault with HTTP 500 and no change behind it): unregistered
certificate, A's certificate with B's signature, tampered Body, unsigned Body, wrapped/moved/
duplicated Body, expired and missing Timestamp, replay, DOCTYPE/entity bombs, oversized body."""
import copy
import uuid

import pytest
import requests
from lxml import etree

from conftest import soap_client

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
EC2 = "http://ec2.amazonaws.com/doc/2013-10-01/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


@pytest.fixture(scope="module")
def alice(wsdl, gateway, users):
    return soap_client(wsdl, gateway, users["A"]["key"], users["A"]["cert"])


def items(x):
    return list(x.item) if x is not None and getattr(x, "item", None) else []


def first_image(svc):
    r = svc.DescribeImages(imagesSet={"item": []})
    imgs = items(r.imagesSet)
    assert imgs, "the simulator has images"
    return imgs[0].imageId


def my_instances(svc):
    r = svc.DescribeInstances(instancesSet={"item": []})
    out = {}
    for res in items(r.reservationSet):
        for i in items(res.instancesSet):
            out[i.instanceId] = i.instanceState.name
    return out


# ------------------------------------------------------------------------------------------------
# Operations


def test_describe_images_and_volumes(alice):
    _, svc = alice
    r = svc.DescribeImages(imagesSet={"item": []}, ownersSet={"item": [{"owner": "self"}, {"owner": "amazon"}]})
    assert r.requestId
    r = svc.DescribeImages(imagesSet={"item": []})
    for img in items(r.imagesSet):
        assert img.imageId.startswith("ami-")
    r = svc.DescribeVolumes(volumeSet={"item": []})
    assert r.requestId
    for v in items(r.volumeSet):
        assert v.volumeId.startswith("vol-")


def test_create_key_pair(alice):
    _, svc = alice
    name = "soap-" + uuid.uuid4().hex[:8]
    r = svc.CreateKeyPair(keyName=name)
    assert r.keyName == name
    assert "PRIVATE KEY" in r.keyMaterial
    r = svc.DescribeKeyPairs(keySet={"item": [{"keyName": name}]})
    assert [k.keyName for k in items(r.keySet)] == [name]


def test_run_describe_terminate(alice):
    _, svc = alice
    ami = first_image(svc)
    r = svc.RunInstances(imageId=ami, minCount=1, maxCount=1, groupSet={"item": []}, instanceType="m1.small")
    launched = [i.instanceId for i in items(r.instancesSet)]
    assert len(launched) == 1 and launched[0].startswith("i-")
    iid = launched[0]
    r = svc.DescribeInstances(instancesSet={"item": [{"instanceId": iid}]})
    got = [i.instanceId for res in items(r.reservationSet) for i in items(res.instancesSet)]
    assert got == [iid]
    r = svc.TerminateInstances(instancesSet={"item": [{"instanceId": iid}]})
    assert [i.instanceId for i in items(r.instancesSet)] == [iid]


def test_fault_shape(alice):
    from zeep.exceptions import Fault
    _, svc = alice
    with pytest.raises(Fault) as e:
        svc.DescribeInstances(instancesSet={"item": [{"instanceId": "i-0123456789abcdef0"}]})
    assert e.value.code == "aws:Client.InvalidInstanceID.NotFound"


# ------------------------------------------------------------------------------------------------
# Attacks: hand-built variants of what zeep would send, posted raw.


def envelope(wsdl, gateway, key, cert, op, **args):
    """The signed envelope zeep would send for `op`, as an lxml tree."""
    c, _ = soap_client(wsdl, gateway, key, cert, **args.pop("_wsse", {}))
    return c.create_message(c.service, op, **args)


def post(gateway, body):
    if not isinstance(body, (bytes, str)):
        body = etree.tostring(body)
    r = requests.post(gateway["endpoint"] + "/awsapi", data=body, timeout=30,
                      headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"TerminateInstances"'})
    return r


def fault_code(r):
    assert r.status_code == 500, r.text
    doc = etree.fromstring(r.content)
    return doc.find(".//faultcode").text


@pytest.fixture(scope="module")
def victim(alice):
    """A running instance of A's that every attack tries to terminate."""
    _, svc = alice
    ami = first_image(svc)
    r = svc.RunInstances(imageId=ami, minCount=1, maxCount=1, groupSet={"item": []}, instanceType="m1.small")
    iid = items(r.instancesSet)[0].instanceId
    yield iid
    svc.TerminateInstances(instancesSet={"item": [{"instanceId": iid}]})


def terminate_env(wsdl, gateway, key, cert, iid, **kw):
    return envelope(wsdl, gateway, key, cert, "TerminateInstances", instancesSet={"item": [{"instanceId": iid}]}, **kw)


def body_of(env):
    return env.find("{%s}Body" % SOAP)


def assert_untouched(alice, iid):
    _, svc = alice
    state = my_instances(svc).get(iid)
    assert state not in (None, "shutting-down", "terminated"), state


def test_attack_unregistered_certificate(wsdl, gateway, users, victim, alice):
    x = users["X"]
    r = post(gateway, terminate_env(wsdl, gateway, x["key"], x["cert"], victim))
    assert fault_code(r) == "aws:Client.AuthFailure"
    assert_untouched(alice, victim)


def test_attack_certificate_of_a_signed_by_b(wsdl, gateway, users, victim, alice):
    a, b = users["A"], users["B"]
    r = post(gateway, terminate_env(wsdl, gateway, b["key"], a["cert"], victim))
    assert fault_code(r) == "aws:Client.SignatureDoesNotMatch"
    assert_untouched(alice, victim)


def test_attack_tampered_body(wsdl, gateway, users, victim, alice):
    a = users["A"]
    env = envelope(wsdl, gateway, a["key"], a["cert"], "DescribeInstances", instancesSet={"item": [{"instanceId": victim}]})
    op = body_of(env)[0]
    op.tag = "{%s}TerminateInstances" % EC2
    r = post(gateway, env)
    assert fault_code(r) == "aws:Client.SignatureDoesNotMatch"
    assert_untouched(alice, victim)


def test_attack_unsigned_body(wsdl, gateway, users, victim, alice):
    a = users["A"]
    env = terminate_env(wsdl, gateway, a["key"], a["cert"], victim)
    sig = env.find(".//{http://www.w3.org/2000/09/xmldsig#}SignedInfo")
    body_id = [v for k, v in body_of(env).attrib.items() if k.endswith("}Id")][0]
    for ref in sig.findall("{http://www.w3.org/2000/09/xmldsig#}Reference"):
        if ref.get("URI") == "#" + body_id:
            sig.remove(ref)  # breaks SignedInfo's own signature too: either way refused
    r = post(gateway, env)
    assert fault_code(r) in ("aws:Client.SignatureDoesNotMatch", "aws:Client.InvalidSecurity")
    assert_untouched(alice, victim)


@pytest.mark.parametrize("variant", ["moved-to-security", "moved-to-header", "duplicate-after", "duplicate-before"])
def test_attack_wrapping(wsdl, gateway, users, victim, alice, variant):
    a = users["A"]
    # A signed, harmless request; the attacker swaps in a Body of their own.
    env = envelope(wsdl, gateway, a["key"], a["cert"], "DescribeInstances", instancesSet={"item": [{"instanceId": victim}]})
    signed = body_of(env)
    evil = etree.Element("{%s}Body" % SOAP)
    evil.append(copy.deepcopy(terminate_env(wsdl, gateway, users["X"]["key"], users["X"]["cert"], victim).find("{%s}Body" % SOAP)[0]))
    header = env.find("{%s}Header" % SOAP)
    if variant == "moved-to-security":
        env.remove(signed)
        wrapper = etree.SubElement(header.find("{%s}Security" % WSSE), "{urn:x}Wrapper")
        wrapper.append(signed)
        env.append(evil)
    elif variant == "moved-to-header":
        env.remove(signed)
        header.append(signed)
        env.append(evil)
    elif variant == "duplicate-after":
        env.append(evil)
    else:
        env.insert(list(env).index(signed), evil)
    r = post(gateway, env)
    assert fault_code(r) == "aws:Client.InvalidSecurity"
    assert_untouched(alice, victim)


def test_attack_expired_and_missing_timestamp(wsdl, gateway, users, victim, alice):
    a = users["A"]
    old = terminate_env(wsdl, gateway, a["key"], a["cert"], victim, _wsse={"offset": -3600, "ttl": 300})
    assert fault_code(post(gateway, old)) == "aws:Client.RequestExpired"
    none = terminate_env(wsdl, gateway, a["key"], a["cert"], victim, _wsse={"timestamp": False})
    assert fault_code(post(gateway, none)) == "aws:Client.RequestExpired"
    assert_untouched(alice, victim)


def test_attack_replay(wsdl, gateway, users, alice):
    a = users["A"]
    env = etree.tostring(envelope(wsdl, gateway, a["key"], a["cert"], "DescribeImages", imagesSet={"item": []}))
    first = post(gateway, env)
    assert first.status_code == 200, first.text
    assert fault_code(post(gateway, env)) == "aws:Client.InvalidSecurity"


def test_attack_doctype_and_entities(wsdl, gateway, users, victim, alice):
    a = users["A"]
    signed = etree.tostring(terminate_env(wsdl, gateway, a["key"], a["cert"], victim)).decode()
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
            '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>') + signed
    assert fault_code(post(gateway, bomb)) == "aws:Client.InvalidSOAPRequest"
    xxe = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + signed
    assert fault_code(post(gateway, xxe)) == "aws:Client.InvalidSOAPRequest"
    assert_untouched(alice, victim)


def test_attack_oversized(wsdl, gateway, users, victim, alice):
    a = users["A"]
    signed = etree.tostring(terminate_env(wsdl, gateway, a["key"], a["cert"], victim)).decode()
    big = signed.replace("</soap-env:Envelope>", "<!--" + "x" * (2 * 1024 * 1024) + "--></soap-env:Envelope>")
    r = post(gateway, big)
    # Over the server's body limit (413 before any parsing) or the SOAP limit (fault).
    assert r.status_code in (413, 500), r.status_code
    assert_untouched(alice, victim)


def test_no_secret_in_logs(gateway, users, alice):
    log = gateway["log"].read_text(errors="replace")
    for u in (users["A"], users["B"]):
        assert u["secret_key"] not in log
