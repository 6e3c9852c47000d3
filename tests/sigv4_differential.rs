//! Differential test of the SigV4 verifier against the AWS SDK for Rust's own signer (`aws-sigv4`,
//! a dev-dependency: the reference implementation every Rust AWS client signs with, so agreeing
//! with it is agreeing with real clients). Random requests (method, path, query and form
//! parameters with awkward characters) signed by it must verify; every one-byte mutation of what
//! is signed (query string, body, Authorization, X-Amz-Date, Host) must be refused, unless the
//! mutated request means the same thing (e.g. `%2f` for `%2F`: same decoded parameters), which the
//! test decides by decoding, not by trusting the verifier.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use ec2bridge::auth::credentials::{KnownUser, MemorySource};
use ec2bridge::auth::{AuthSettings, SignedRequest, authenticate};
use ec2bridge::ec2::query::decode_pairs;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

const AK: &str = "AKIDDIFFERENTIAL0001";
const SK: &str = "differential/Secret+Key=0123456789abcdefXYZ";
const HOST: &str = "gw.example.test:7080";

/// One request as it travels: the parts a mutation may touch.
#[derive(Clone, Debug)]
struct Wire {
    method: &'static str,
    path: String,
    query: String,
    body: Vec<u8>,
    host: String,
    amz_date: String,
    authorization: String,
}

fn random_text(rng: &mut StdRng, max: usize) -> String {
    const ALPHABET: &[&str] = &[
        "a",
        "Z",
        "0",
        "-",
        "_",
        ".",
        "~",
        " ",
        "+",
        "%",
        "=",
        "&",
        "/",
        "?",
        "#",
        "*",
        "!",
        "'",
        "(",
        ")",
        ",",
        ";",
        ":",
        "@",
        "$",
        "é",
        "ü",
        "日",
        "\u{1F600}",
        "\t",
    ];
    let n = rng.random_range(0..=max);
    (0..n).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]).collect()
}

fn enc(s: &str) -> String {
    // As SDKs send it: RFC 3986 unreserved kept, the rest %XX (uppercase).
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn random_pairs(rng: &mut StdRng, max: usize) -> String {
    let n = rng.random_range(0..=max);
    let mut pairs = Vec::new();
    for i in 0..n {
        let mut k = random_text(rng, 6);
        if k.is_empty() {
            k = format!("k{i}");
        }
        pairs.push(format!("{}={}", enc(&k), enc(&random_text(rng, 12))));
    }
    pairs.join("&")
}

fn signed(rng: &mut StdRng, at: SystemTime) -> Wire {
    let method = if rng.random_bool(0.5) { "GET" } else { "POST" };
    let path = ["/", "/awsapi", "/ec2/a-b_c.d~e"][rng.random_range(0..3)].to_string();
    let mut query = format!("Action=DescribeInstances&Version=2016-11-15&{}", random_pairs(rng, 4));
    query = query.trim_end_matches('&').to_string();
    let body = if method == "POST" { random_pairs(rng, 5).into_bytes() } else { Vec::new() };
    let uri = format!("http://{HOST}{path}?{query}");
    let identity = Credentials::new(AK, SK, None, None, "differential").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("ec2")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let mut headers = vec![("host", HOST)];
    if method == "POST" {
        headers.push(("content-type", content_type));
    }
    let signable =
        SignableRequest::new(method, &uri, headers.iter().copied(), SignableBody::Bytes(&body)).expect("signable");
    let (instructions, _) = sign(signable, &params).expect("aws-sigv4 signs").into_parts();
    let mut req = http::Request::builder().method(method).uri(&uri).header("host", HOST);
    if method == "POST" {
        req = req.header("content-type", content_type);
    }
    let mut req = req.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    let h = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    Wire {
        method,
        path,
        query: req.uri().query().unwrap_or("").to_string(),
        body,
        host: h("host"),
        amz_date: h("x-amz-date"),
        authorization: h("authorization"),
    }
}

/// Method, path, decoded query, body, host, X-Amz-Date, Authorization (normalised).
type Meaning = (String, String, Vec<(String, String)>, Vec<u8>, String, String, String);

/// What a request means, as the gateway would decode it (for deciding that a mutation is only
/// another spelling of the same request): decoded query parameters (`%2f` = `%2F`, `+` = `%20`),
/// the host without case, and in Authorization the hex digits of `Signature` and the header
/// names of `SignedHeaders` without case (HTTP header names and hex are case-insensitive; the
/// verifier compares them so, and what is signed does not change).
fn meaning(w: &Wire) -> Option<Meaning> {
    let q = decode_pairs(w.query.as_bytes()).ok()?;
    let auth = w
        .authorization
        .split(", ")
        .map(|f| match f.split_once('=') {
            Some((k @ ("SignedHeaders" | "Signature"), v)) => format!("{k}={}", v.to_ascii_lowercase()),
            _ => f.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some((
        w.method.to_string(),
        w.path.clone(),
        q,
        w.body.clone(),
        w.host.to_ascii_lowercase(),
        w.amz_date.clone(),
        auth,
    ))
}

async fn verify(w: &Wire, creds: &MemorySource, now: OffsetDateTime) -> Result<(), String> {
    let mut headers = http::HeaderMap::new();
    let mut put = |n: &'static str, v: &str| match http::HeaderValue::from_str(v) {
        Ok(v) => {
            headers.insert(n, v);
            Ok(())
        }
        Err(_) => Err("not a header value".to_string()),
    };
    put("host", &w.host)?;
    put("x-amz-date", &w.amz_date)?;
    put("authorization", &w.authorization)?;
    if w.method == "POST" {
        put("content-type", "application/x-www-form-urlencoded; charset=utf-8")?;
    }
    let query = decode_pairs(w.query.as_bytes()).map_err(|e| e.to_string())?;
    let form = if w.method == "POST" { decode_pairs(&w.body).map_err(|e| e.to_string())? } else { Vec::new() };
    let req =
        SignedRequest { method: w.method, path: &w.path, headers: &headers, query: &query, form: &form, body: &w.body };
    authenticate(&req, creds, &AuthSettings::default(), now).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Every one-byte change of one field: each position, a few replacement bytes.
fn mutations(w: &Wire, rng: &mut StdRng) -> Vec<(String, Wire)> {
    let mut out = Vec::new();
    let fields: [(&str, Vec<u8>); 5] = [
        ("query", w.query.clone().into_bytes()),
        ("body", w.body.clone()),
        ("authorization", w.authorization.clone().into_bytes()),
        ("x-amz-date", w.amz_date.clone().into_bytes()),
        ("host", w.host.clone().into_bytes()),
    ];
    for (name, bytes) in fields {
        for i in 0..bytes.len() {
            for _ in 0..2 {
                let mut b = bytes.clone();
                let old = b[i];
                let new = loop {
                    let c = rng.random_range(0x20u8..0x7f);
                    if c != old {
                        break c;
                    }
                };
                b[i] = new;
                let Ok(text) = String::from_utf8(b.clone()) else { continue };
                let mut m = w.clone();
                match name {
                    "query" => m.query = text,
                    "body" => m.body = b,
                    "authorization" => m.authorization = text,
                    "x-amz-date" => m.amz_date = text,
                    _ => m.host = text,
                }
                out.push((format!("{name}[{i}] {:?}->{:?}", old as char, new as char), m));
            }
        }
    }
    out
}

#[tokio::test]
async fn aws_sigv4_signed_requests_verify_and_one_byte_mutations_do_not() {
    let creds = MemorySource::new();
    creds.insert(AK, KnownUser::cloudstack_user(AK, SK, None));
    let seed = std::env::var("EC2BRIDGE_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5157_4434u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let at = SystemTime::now() - Duration::from_secs(30);
    let now = OffsetDateTime::now_utc();
    let (mut checked, mut same_meaning) = (0usize, 0usize);
    let mut accepted_mutations = Vec::new();
    for n in 0..60 {
        let w = signed(&mut rng, at);
        verify(&w, &creds, now)
            .await
            .unwrap_or_else(|e| panic!("request {n} signed by aws-sigv4 refused: {e}\n{w:#?}"));
        let original = meaning(&w);
        for (what, m) in mutations(&w, &mut rng) {
            if meaning(&m) == original {
                same_meaning += 1;
                continue;
            }
            checked += 1;
            if verify(&m, &creds, now).await.is_ok() {
                accepted_mutations.push(format!("request {n}: {what}\n  {m:?}"));
            }
        }
    }
    eprintln!("seed {seed}: {checked} mutations refused, {same_meaning} skipped as the same request");
    assert!(checked > 5_000, "too few mutations checked: {checked}");
    assert!(accepted_mutations.is_empty(), "mutations accepted:\n{}", accepted_mutations.join("\n"));
}
