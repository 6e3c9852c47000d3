//! Secrets stay out of Debug output and of error messages (which end up in logs).

use ec2bridge::app::ReadyUser;
use ec2bridge::app::register_cli::{RegisterArgs, run_cli};
use ec2bridge::auth::SignedRequest;
use ec2bridge::cloudstack::{CsClient, CsCredentials};
use ec2bridge::sim::SimUser;

const SECRET: &str = "s3cr3t-VALUE-never-shown";

/// `ec2bridge register --delete` against a port nothing listens on.
fn register_args() -> RegisterArgs {
    RegisterArgs {
        apikey: "AK".into(),
        secretkey: SECRET.into(),
        cert: None,
        key: None,
        url: "http://127.0.0.1:1/awsapi".into(),
        delete: true,
    }
}

#[test]
fn debug_impls_redact() {
    let sim = SimUser {
        account: "a".into(),
        account_id: "acct-uuid".into(),
        domain: "ROOT".into(),
        username: "u".into(),
        api_key: "AK".into(),
        secret_key: SECRET.into(),
        is_admin: false,
    };
    let ready = ReadyUser { account: "a".into(), access_key: "AK".into(), secret_key: SECRET.into(), is_admin: true };
    let reg = register_args();
    let creds = CsCredentials { api_key: "AK".into(), secret_key: SECRET.into() };
    let mut h = http::HeaderMap::new();
    h.insert("authorization", format!("AWS4-HMAC-SHA256 Signature={SECRET}").parse().unwrap());
    let q = vec![("Signature".to_string(), SECRET.to_string())];
    let signed = SignedRequest { method: "GET", path: "/", headers: &h, query: &q, form: &[], body: b"" };
    for text in
        [format!("{sim:?}"), format!("{ready:?}"), format!("{reg:?}"), format!("{creds:?}"), format!("{signed:?}")]
    {
        assert!(!text.contains(SECRET), "{text}");
    }
}

#[tokio::test]
async fn transport_errors_carry_no_signed_url() {
    // Registration client: the URL holds the signature (and for SetUserKeys the secret key).
    let reg = register_args();
    let e = run_cli(reg).await.unwrap_err().to_string();
    assert!(e.contains("cannot reach the gateway"), "{e}");
    assert!(!e.contains("Signature") && !e.contains(SECRET) && !e.contains("AWSAccessKeyId"), "{e}");

    // CloudStack client: refused connection, with the signed query never in the message.
    let c = CsClient::new("http://127.0.0.1:1/client/api", Default::default()).unwrap();
    let creds = CsCredentials { api_key: "AK".into(), secret_key: SECRET.into() };
    let e = c.call(&creds, "listZones", &[("name".into(), "x".into())]).await.unwrap_err().to_string();
    assert!(!e.contains("signature") && !e.contains("apiKey") && !e.contains(SECRET), "{e}");
    assert_eq!(c.calls(), 1);

    // A password in the endpoint's userinfo: not in construction errors, not in Debug.
    let e = CsClient::new(&format!("http://u:{SECRET}@127.0.0.1:1/client/api?x=1"), Default::default()).unwrap_err();
    assert!(!e.to_string().contains(SECRET), "{e}");
    let c = CsClient::new(&format!("http://u:{SECRET}@127.0.0.1:1/client/api"), Default::default()).unwrap();
    assert!(!format!("{c:?}").contains(SECRET));
}
