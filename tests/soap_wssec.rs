//! WS-Security verification against envelopes signed at test time by an independent
//! implementation (xmlsec through Python, tests/clients/soap/wssign.py), with keys and
//! certificates made by the openssl CLI. Skips (saying so) when either tool is missing.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;

use ec2bridge::auth::wssec::{
    self, BergshamraVerifier, CertificateLookup, SoapSignatureVerifier, WsSecError, authenticate, read_token,
};
use ec2bridge::base::Ec2Error;
use time::OffsetDateTime;

const OP: &str = r#"<ns0:DescribeInstances xmlns:ns0="http://ec2.amazonaws.com/doc/2012-08-15/"><ns0:instancesSet><ns0:item><ns0:instanceId>i-12345678</ns0:instanceId></ns0:item></ns0:instancesSet></ns0:DescribeInstances>"#;

struct Kit {
    dir: PathBuf,
    python: PathBuf,
}

fn python() -> Option<PathBuf> {
    let mut cands = vec![];
    if let Ok(v) = std::env::var("EC2BRIDGE_VENV") {
        cands.push(Path::new(&v).join("bin/python"));
    }
    cands.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    cands.push(PathBuf::from("python3"));
    cands.into_iter().find(|p| {
        Command::new(p).args(["-c", "import xmlsec, lxml"]).output().map(|o| o.status.success()).unwrap_or(false)
    })
}

fn kit(name: &str) -> Option<Kit> {
    let Some(python) = python() else {
        eprintln!("SKIP {name}: no python with xmlsec+lxml (set EC2BRIDGE_VENV)");
        return None;
    };
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIP {name}: no openssl CLI");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("ec2bridge-wssec-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Some(Kit { dir, python })
}

impl Kit {
    /// A fresh RSA key and self-signed certificate named `who`.
    fn identity(&self, who: &str) {
        let key = self.dir.join(format!("{who}.key"));
        if key.exists() {
            return;
        }
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
            .arg(format!("/CN={who}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(self.dir.join(format!("{who}.crt")))
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn cert_der(&self, who: &str) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(self.dir.join(format!("{who}.crt")))
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// Signed with `key_of`'s key, presenting `cert_of`'s certificate.
    fn sign(&self, key_of: &str, cert_of: &str, body: &str, extra: &[&str]) -> String {
        self.identity(key_of);
        self.identity(cert_of);
        let out = Command::new(&self.python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/soap/wssign.py"))
            .arg("--key")
            .arg(self.dir.join(format!("{key_of}.key")))
            .arg("--cert")
            .arg(self.dir.join(format!("{cert_of}.crt")))
            .args(["--body", body])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "wssign: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Kit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Registry stand-in: fingerprint -> owner name.
struct Registry(HashMap<String, String>);

impl CertificateLookup for Registry {
    type Identity = String;
    fn find_certificate<'a>(
        &'a self,
        fp: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Option<String>, Ec2Error>> + Send + 'a>> {
        Box::pin(async move { Ok(self.0.get(fp).cloned()) })
    }
}

fn verify(doc: &str) -> Result<wssec::VerifiedEnvelope, WsSecError> {
    let token = read_token(doc)?;
    BergshamraVerifier.verify(doc, &token, OffsetDateTime::now_utc())
}

fn body_of(doc: &str) -> (usize, usize) {
    let start = doc.find("<soap-env:Body").expect("body start");
    let end = doc.find("</soap-env:Body>").expect("body end") + "</soap-env:Body>".len();
    (start, end)
}

const EVIL_BODY: &str = r#"<soap-env:Body><ns0:TerminateInstances xmlns:ns0="http://ec2.amazonaws.com/doc/2012-08-15/"><ns0:instancesSet><ns0:item><ns0:instanceId>i-99999999</ns0:instanceId></ns0:item></ns0:instancesSet></ns0:TerminateInstances></soap-env:Body>"#;

#[test]
fn valid_envelopes_verify_with_both_algorithm_sets() {
    let Some(k) = kit("valid") else { return };
    for (sig, digest) in [("rsa-sha1", "sha1"), ("rsa-sha256", "sha256"), ("rsa-sha1", "sha256")] {
        let doc = k.sign("alice", "alice", OP, &["--sig", sig, "--digest", digest]);
        let t0 = std::time::Instant::now();
        let v = verify(&doc).unwrap_or_else(|e| panic!("{sig}/{digest}: {e}\n{doc}"));
        eprintln!("verify {sig}/{digest}: {:?}", t0.elapsed());
        assert_eq!(v.operation.name, "DescribeInstances");
        assert_eq!(v.operation.namespace.as_deref(), Some("http://ec2.amazonaws.com/doc/2012-08-15/"));
        let id = &v.operation.child("instancesSet").unwrap().child("item").unwrap().child("instanceId").unwrap().text;
        assert_eq!(id, "i-12345678");
        assert_eq!(v.token.fingerprint, wssec::fingerprint(&k.cert_der("alice")));
        assert!(v.signature.len() >= 128, "decoded RSA signature");
    }
    // No Expires: Created alone is fresh enough.
    let doc = k.sign("alice", "alice", OP, &["--no-expires"]);
    verify(&doc).unwrap();
}

#[tokio::test]
async fn registry_decides_who_and_unregistered_certificates_fail() {
    let Some(k) = kit("registry") else { return };
    let doc = k.sign("alice", "alice", OP, &[]);
    k.identity("bob");
    let reg = Registry(HashMap::from([(wssec::fingerprint(&k.cert_der("alice")), "alice".to_string())]));
    let now = OffsetDateTime::now_utc();
    let (who, v) = authenticate(&BergshamraVerifier, &reg, doc.as_bytes(), now).await.unwrap();
    assert_eq!(who, "alice");
    assert_eq!(v.operation.name, "DescribeInstances");

    // Bob signs properly with his own, unregistered, certificate.
    let bobs = k.sign("bob", "bob", OP, &[]);
    let e = authenticate(&BergshamraVerifier, &reg, bobs.as_bytes(), now).await.unwrap_err();
    assert_eq!(e.code, "AuthFailure");

    // Bob presents Alice's registered certificate but signs with his key.
    let forged = k.sign("bob", "alice", OP, &[]);
    let e = authenticate(&BergshamraVerifier, &reg, forged.as_bytes(), now).await.unwrap_err();
    assert_eq!(e.code, "SignatureDoesNotMatch", "{e}");
}

#[test]
fn token_must_match_the_registered_one() {
    let Some(k) = kit("tokmatch") else { return };
    let doc = k.sign("alice", "alice", OP, &[]);
    let other = k.sign("bob", "bob", OP, &[]);
    let bobs = read_token(&other).unwrap();
    let e = BergshamraVerifier.verify(&doc, &bobs, OffsetDateTime::now_utc()).unwrap_err();
    assert_eq!(e, WsSecError::UnknownCertificate);
}

#[test]
fn tampered_body_fails() {
    let Some(k) = kit("tamper") else { return };
    let doc = k.sign("alice", "alice", OP, &[]);
    let bad = doc.replace("i-12345678", "i-87654321");
    assert_ne!(bad, doc);
    assert!(matches!(verify(&bad), Err(WsSecError::BadSignature(_))), "{:?}", verify(&bad));
    // An extra operation slipped in beside the signed one changes the digest too.
    let (_, end) = body_of(&doc);
    let close = end - "</soap-env:Body>".len();
    let two = format!("{}<ns0:X xmlns:ns0=\"urn:x\"/>{}", &doc[..close], &doc[close..]);
    assert!(verify(&two).is_err());
    // Tampered timestamp.
    let ts = doc.find("<wsu:Created>").unwrap() + "<wsu:Created>".len();
    let mut t = doc.clone();
    t.replace_range(ts..ts + 4, "2099");
    assert!(verify(&t).is_err());
}

#[test]
fn unsigned_body_or_timestamp_fail() {
    let Some(k) = kit("unsigned") else { return };
    let doc = k.sign("alice", "alice", OP, &["--no-sign-body"]);
    let e = verify(&doc).unwrap_err();
    assert!(matches!(e, WsSecError::Policy(_)), "{e:?}");
    assert!(e.to_string().contains("Body"));
    let doc = k.sign("alice", "alice", OP, &["--no-sign-timestamp"]);
    let e = verify(&doc).unwrap_err();
    assert!(matches!(e, WsSecError::Policy(_)), "{e:?}");
    // No signature at all.
    let doc = k.sign("alice", "alice", OP, &[]);
    let s = doc.find("<Signature ").unwrap();
    let e = doc.find("</Signature>").unwrap() + "</Signature>".len();
    let nosig = format!("{}{}", &doc[..s], &doc[e..]);
    assert!(matches!(verify(&nosig), Err(WsSecError::Missing(_))), "{:?}", verify(&nosig));
}

#[test]
fn wrapping_variants_fail() {
    let Some(k) = kit("wrap") else { return };
    let doc = k.sign("alice", "alice", OP, &[]);
    assert!(verify(&doc).is_ok());
    let (bs, be) = body_of(&doc);
    let signed_body = &doc[bs..be];
    let sec_end = doc.find("</wsse:Security>").unwrap();
    let hdr_end = doc.find("</soap-env:Header>").unwrap();

    // 1. Signed Body moved into the Security header (wrapped), evil Body in its place.
    let mut v1 = doc.clone();
    v1.replace_range(bs..be, EVIL_BODY);
    v1.insert_str(sec_end, &format!("<Wrapper xmlns=\"urn:w\">{signed_body}</Wrapper>"));
    // 2. Signed Body moved into the Header directly.
    let mut v2 = doc.clone();
    v2.replace_range(bs..be, EVIL_BODY);
    v2.insert_str(hdr_end, signed_body);
    // 3. Evil Body added beside the signed one (duplicate Body), before and after.
    let mut v3 = doc.clone();
    v3.insert_str(bs, EVIL_BODY);
    let mut v4 = doc.clone();
    v4.insert_str(be, EVIL_BODY);
    // 5. Signed Body wrapped in an unknown element under the Envelope, evil Body first.
    let mut v5 = doc.clone();
    v5.replace_range(bs..be, &format!("{EVIL_BODY}<Wrapper xmlns=\"urn:w\">{signed_body}</Wrapper>"));
    // 6. Evil Body carrying the same wsu:Id, signed Body kept in a wrapper.
    let evil_with_id = EVIL_BODY.replace(
        "<soap-env:Body>",
        "<soap-env:Body xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\" wsu:Id=\"id-body\">",
    );
    let mut v6 = doc.clone();
    v6.replace_range(bs..be, &evil_with_id);
    v6.insert_str(sec_end, &format!("<Wrapper xmlns=\"urn:w\">{signed_body}</Wrapper>"));
    // 7. A second Signature placed before the real one in the Header.
    let sig_s = doc.find("<Signature ").unwrap();
    let sig_e = doc.find("</Signature>").unwrap() + "</Signature>".len();
    let hdr_start = doc.find("<wsse:Security").unwrap();
    let mut v7 = doc.clone();
    v7.insert_str(
        hdr_start,
        &format!("<Other xmlns=\"urn:w\" xmlns:wsse=\"{}\">{}</Other>", wssec::NS_WSSE, &doc[sig_s..sig_e]),
    );
    // 8. Second Security header.
    let sec_s = doc.find("<wsse:Security").unwrap();
    let sec_e = sec_end + "</wsse:Security>".len();
    let mut v8 = doc.clone();
    v8.insert_str(sec_e, &doc[sec_s..sec_e].replace("id-", "id2-"));

    for (name, v) in [("moved-to-security", v1), ("moved-to-header", v2), ("dup-before", v3), ("dup-after", v4)]
        .into_iter()
        .chain([("wrapped-under-envelope", v5), ("same-id", v6), ("second-signature", v7), ("second-security", v8)])
    {
        match verify(&v) {
            Ok(ok) => panic!("{name} accepted: executes {}", ok.operation.name),
            // Each must be refused for what it is, not for a slip in the test's XML surgery.
            Err(e @ WsSecError::Malformed(_)) => panic!("{name}: test document broken: {e}"),
            Err(e) => eprintln!("{name}: {e}"),
        }
    }
}

#[test]
fn stale_future_expired_and_missing_timestamps_fail() {
    let Some(k) = kit("time") else { return };
    for (name, args) in [
        ("old", vec!["--created-offset", "-3600", "--expires-in", "7200"]),
        ("future", vec!["--created-offset", "3600"]),
        ("expired", vec!["--created-offset", "-600", "--expires-in", "60"]),
    ] {
        let doc = k.sign("alice", "alice", OP, &args);
        let e = verify(&doc).unwrap_err();
        assert!(matches!(e, WsSecError::Expired(_)), "{name}: {e:?}");
        assert_eq!(Ec2Error::from(e).code, "RequestExpired");
    }
    let doc = k.sign("alice", "alice", OP, &["--no-timestamp"]);
    let e = verify(&doc).unwrap_err();
    assert!(matches!(e, WsSecError::Expired(_)), "{e:?}");
    // A fresh, valid request replayed after the window is refused.
    let doc = k.sign("alice", "alice", OP, &[]);
    let token = read_token(&doc).unwrap();
    let later = OffsetDateTime::now_utc() + time::Duration::minutes(20);
    assert!(matches!(BergshamraVerifier.verify(&doc, &token, later), Err(WsSecError::Expired(_))));
}

#[test]
fn doctype_and_entity_bombs_are_refused() {
    let Some(k) = kit("bomb") else { return };
    let doc = k.sign("alice", "alice", OP, &[]);
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>"#;
    let bomb = format!("{laughs}{}", doc.replace("i-12345678", "&lol3;"));
    let e = read_token(&bomb).unwrap_err();
    assert!(matches!(e, WsSecError::Malformed(_)), "{e:?}");
    assert_eq!(Ec2Error::from(e).code, "InvalidSOAPRequest");
    let ext = format!("<!DOCTYPE x SYSTEM \"file:///etc/passwd\">{doc}");
    assert!(read_token(&ext).is_err());
    assert!(BergshamraVerifier.verify(&ext, &read_token(&doc).unwrap(), OffsetDateTime::now_utc()).is_err());
}

#[tokio::test]
async fn frontend_turns_a_signed_envelope_into_the_query_request_once() {
    use ec2bridge::ec2::render::soap_fault;
    use ec2bridge::ec2::soap::SoapFrontend;
    let Some(k) = kit("frontend") else { return };
    let run = r#"<ns0:RunInstances xmlns:ns0="http://ec2.amazonaws.com/doc/2012-08-15/"><ns0:imageId>ami-1</ns0:imageId><ns0:minCount>1</ns0:minCount><ns0:maxCount>1</ns0:maxCount><ns0:keyName>k</ns0:keyName><ns0:groupSet><ns0:item><ns0:groupName>web</ns0:groupName></ns0:item></ns0:groupSet><ns0:userData version="1.0" encoding="base64"><ns0:data>aGk=</ns0:data></ns0:userData><ns0:instanceType>m1.small</ns0:instanceType><ns0:placement><ns0:availabilityZone>z1</ns0:availabilityZone></ns0:placement></ns0:RunInstances>"#;
    let doc = k.sign("alice", "alice", run, &[]);
    let reg = Registry(HashMap::from([(wssec::fingerprint(&k.cert_der("alice")), "alice".to_string())]));
    let fe = SoapFrontend::with_bergshamra().with_paths(ec2bridge::mapping::builtin_soap_paths());
    let (who, req) = fe.authenticate(&reg, doc.as_bytes(), "req-1".into()).await.unwrap();
    assert_eq!(who, "alice");
    assert_eq!((req.action.as_str(), req.version.as_str()), ("RunInstances", "2012-08-15"));
    let p = &req.params;
    assert_eq!(p.get("ImageId"), Some("ami-1"));
    assert_eq!(p.get("SecurityGroup.1"), Some("web"));
    assert_eq!(p.get("UserData"), Some("aGk="));
    assert_eq!(p.get("Placement.AvailabilityZone"), Some("z1"));
    assert_eq!(p.0.len(), 8, "{p:?}");

    // The same bytes again: a replay.
    let e = fe.authenticate(&reg, doc.as_bytes(), "req-2".into()).await.unwrap_err();
    assert_eq!(e.code, "InvalidSecurity");
    assert!(soap_fault("req-2", &e).contains("aws:Client.InvalidSecurity"));

    // Issue 14 item 9: the same signature re-spelled is the same request. The engine reads only
    // the first text node of SignatureValue and drops all Unicode whitespace, so before the fix
    // these verified and were keyed as new requests (1 capture started 5 instances).
    let sv_start = doc.find("SignatureValue>").unwrap() + "SignatureValue>".len();
    let sv_end = sv_start + doc[sv_start..].find('<').unwrap();
    let value = doc[sv_start..sv_end].to_string();
    let mid = value.len() / 2;
    let respelled = [
        format!("{}\u{a0}{}", &value[..mid], &value[mid..]),
        format!("{value}\u{a0}"),
        format!("{value}<!---->"),
        format!("{value}<!---->AAAA"),
        format!("{}<!---->{}", &value[..mid], &value[mid..]),
        format!("\u{2003}{value}"),
        format!("{value}<![CDATA[]]>"),
    ];
    for (i, v) in respelled.iter().enumerate() {
        let mut replay = doc.clone();
        replay.replace_range(sv_start..sv_end, v);
        let e = fe.authenticate(&reg, replay.as_bytes(), format!("re-{i}")).await.unwrap_err();
        assert_eq!(e.code, "InvalidSecurity", "variant {i}: {v:?}: {e}");
    }
    // Plain ASCII whitespace is part of the ordinary spelling: verified, and still the same request.
    let mut wrapped = doc.clone();
    wrapped.replace_range(sv_start..sv_end, &format!("\n  {}\n  {}\n", &value[..mid], &value[mid..]));
    let e = fe.authenticate(&reg, wrapped.as_bytes(), "re-ws".into()).await.unwrap_err();
    assert!(e.message.contains("already been processed"), "{e}");
    // A fresh envelope still goes through. Its body differs: signing the same body again within
    // the same second gives the same Timestamp and (PKCS#1 v1.5 being deterministic) the same
    // signature bytes, which is a replay by design.
    let fresh_run = run.replace("ami-1", "ami-2");
    fe.authenticate(&reg, k.sign("alice", "alice", &fresh_run, &[]).as_bytes(), "fresh".into()).await.unwrap();

    // Oversized: refused before parsing.
    let mut big = doc.clone().into_bytes();
    big.resize(fe.max_body + 1, b' ');
    let e = fe.authenticate(&reg, &big, "req-3".into()).await.unwrap_err();
    assert_eq!(e.code, "InvalidSOAPRequest");
}

/// The envelope zeep (WSDL client) + xmlsec BinarySignature sends, as the real-client suite does.
#[tokio::test]
async fn zeep_envelopes_verify_and_flatten() {
    use ec2bridge::ec2::soap::SoapFrontend;
    let Some(k) = kit("zeep") else { return };
    // The AWS EC2 WSDL kept in the repository as test data (docs/ec2-wire.md "SOAP and WS-Security").
    let wsdl = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/soap/ec2-2013-10-01.wsdl");
    let has_zeep =
        Command::new(&k.python).args(["-c", "import zeep"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !has_zeep || !wsdl.exists() {
        eprintln!("SKIP zeep_envelopes_verify_and_flatten: no zeep or no WSDL");
        return;
    }
    k.identity("alice");
    let reg = Registry(HashMap::from([(wssec::fingerprint(&k.cert_der("alice")), "alice".to_string())]));
    let fe = SoapFrontend::with_bergshamra().with_paths(ec2bridge::mapping::builtin_soap_paths());
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (
            "DescribeInstances",
            r#"{"instancesSet": {"item": [{"instanceId": "i-1"}, {"instanceId": "i-2"}]}, "filterSet": {"item": [{"name": "instance-state-name", "valueSet": {"item": [{"value": "running"}]}}]}}"#,
            &[
                ("InstanceId.1", "i-1"),
                ("InstanceId.2", "i-2"),
                ("Filter.1.Name", "instance-state-name"),
                ("Filter.1.Value.1", "running"),
            ],
        ),
        (
            "RunInstances",
            r#"{"imageId": "ami-1", "minCount": 1, "maxCount": 2, "groupSet": {"item": [{"groupId": "sg-1"}]}, "userData": {"data": "aGk=", "version": "1.0", "encoding": "base64"}, "placement": {"availabilityZone": "z"}, "instanceType": "m1.small"}"#,
            &[
                ("ImageId", "ami-1"),
                ("MinCount", "1"),
                ("MaxCount", "2"),
                ("SecurityGroupId.1", "sg-1"),
                ("UserData", "aGk="),
                ("Placement.AvailabilityZone", "z"),
                ("InstanceType", "m1.small"),
            ],
        ),
        (
            "DescribeImages",
            r#"{"imagesSet": {"item": []}, "ownersSet": {"item": [{"owner": "self"}]}, "executableBySet": {"item": [{"user": "all"}]}}"#,
            &[("Owner.1", "self"), ("ExecutableBy.1", "all")],
        ),
        ("CreateKeyPair", r#"{"keyName": "k1"}"#, &[("KeyName", "k1")]),
        (
            "CreateTags",
            r#"{"resourcesSet": {"item": [{"resourceId": "i-1"}]}, "tagSet": {"item": [{"key": "Name", "value": "web"}]}}"#,
            &[("ResourceId.1", "i-1"), ("Tag.1.Key", "Name"), ("Tag.1.Value", "web")],
        ),
    ];
    for (i, (op, args, want)) in cases.iter().enumerate() {
        let mut cmd = Command::new(&k.python);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/soap/zeep_sign.py"))
            .arg("--wsdl")
            .arg(&wsdl)
            .arg("--key")
            .arg(k.dir.join("alice.key"))
            .arg("--cert")
            .arg(k.dir.join("alice.crt"))
            .args(["--op", op, "--args", args]);
        if i % 2 == 1 {
            cmd.arg("--sha256");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "zeep: {}", String::from_utf8_lossy(&out.stderr));
        let (who, req) =
            fe.authenticate(&reg, &out.stdout, format!("r{i}")).await.unwrap_or_else(|e| panic!("{op}: {e}"));
        assert_eq!(who, "alice");
        assert_eq!((req.action.as_str(), req.version.as_str()), (*op, "2013-10-01"));
        let got: Vec<(&str, &str)> = req.params.0.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(got, want, "{op}");
    }
}

/// Issue 14 item 12: a certificate outside its validity period is refused in WS-Security, with the
/// Timestamps' skew tolerance. The certificate (openssl, `-days 2`) is valid from now; the
/// envelope's Created and the verifier's clock are moved together.
#[test]
fn expired_or_not_yet_valid_certificates_fail() {
    let Some(k) = kit("certtime") else { return };
    for (name, offset) in [("expired", 3 * 86_400), ("not-yet-valid", -86_400)] {
        let doc = k.sign("alice", "alice", OP, &["--created-offset", &offset.to_string()]);
        let token = read_token(&doc).unwrap();
        let at = OffsetDateTime::now_utc() + time::Duration::seconds(offset);
        let e = BergshamraVerifier.verify(&doc, &token, at).unwrap_err();
        assert!(matches!(e, WsSecError::CertificateNotValid(_)), "{name}: {e:?}");
        assert_eq!(Ec2Error::from(e).code, "AuthFailure");
    }
    // Ten minutes before its notBefore is within the tolerance.
    let doc = k.sign("alice", "alice", OP, &["--created-offset", "-600"]);
    let token = read_token(&doc).unwrap();
    BergshamraVerifier.verify(&doc, &token, OffsetDateTime::now_utc() - time::Duration::minutes(10)).unwrap();
}
