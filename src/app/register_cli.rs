//! Client side of registration: `ec2bridge register` sends the same requests as
//! scripts/cloudstack-aws-api-register (signed POSTs; see docs/soap-and-registration.md).

use std::time::Duration;

use time::OffsetDateTime;

use crate::auth::wssec;
use crate::auth::{canonical_query, sigv2, uri_encode};
use crate::ec2::registration::{certificate_der, proof_message};

/// Register CloudStack keys and an X.509 certificate with a gateway (for SOAP clients).
#[derive(clap::Args)]
pub struct RegisterArgs {
    /// CloudStack API key (= EC2 access key).
    // CloudStack's keys are URL-safe base64, so one in 64 starts with '-': taken as the value,
    // not as another option.
    #[arg(short = 'a', long = "apikey", allow_hyphen_values = true)]
    pub apikey: String,
    /// CloudStack secret key.
    #[arg(
        short = 's',
        long = "secretkey",
        env = "EC2BRIDGE_SECRET_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub secretkey: String,
    /// PEM X.509 certificate file to register (required unless --delete).
    #[arg(short = 'c', long = "cert")]
    pub cert: Option<std::path::PathBuf>,
    /// The certificate's PEM private key: proves possession, so the binding replaces anyone's
    /// earlier unproven binding of the same certificate and cannot be taken over.
    #[arg(short = 'k', long = "key")]
    pub key: Option<std::path::PathBuf>,
    /// Gateway URL, e.g. http://host:7080/awsapi
    #[arg(short = 'u', long = "url")]
    pub url: String,
    /// Remove the registered certificate instead.
    #[arg(long)]
    pub delete: bool,
}

/// Debug never prints the secret key.
impl std::fmt::Debug for RegisterArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterArgs")
            .field("apikey", &self.apikey)
            .field("secretkey", &"<redacted>")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("url", &self.url)
            .field("delete", &self.delete)
            .finish()
    }
}

/// The signed GET URL for one registration action (standard SigV2, HmacSHA1, values RFC 3986
/// encoded so both canonical forms coincide). The old script's wire form: kept for tests and old
/// clients; `ec2bridge register` sends [`signed_form`] instead.
pub fn signed_url(
    base: &str,
    apikey: &str,
    secret: &str,
    action: &str,
    extra: &[(&str, &str)],
    now: OffsetDateTime,
) -> anyhow::Result<String> {
    let (mut url, query) = signed_request("GET", base, apikey, secret, action, extra, now)?;
    url.set_query(Some(&query));
    Ok(url.to_string())
}

/// One registration action as a signed `POST`: the URL (no query) and the form body. Parameters,
/// the secret key of SetUserKeys among them, travel in the body, out of URLs that proxies and
/// access logs keep.
pub fn signed_form(
    base: &str,
    apikey: &str,
    secret: &str,
    action: &str,
    extra: &[(&str, &str)],
    now: OffsetDateTime,
) -> anyhow::Result<(String, String)> {
    let (url, body) = signed_request("POST", base, apikey, secret, action, extra, now)?;
    Ok((url.to_string(), body))
}

/// `Timestamp` as the clients send it. Milliseconds: registration calls are single-use, so two
/// runs within one second must not produce the same signed request.
fn registration_timestamp(now: OffsetDateTime) -> anyhow::Result<String> {
    Ok(now.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))?)
}

/// The URL without query and the signed parameters (`...&Signature=...`) for `method`.
fn signed_request(
    method: &str,
    base: &str,
    apikey: &str,
    secret: &str,
    action: &str,
    extra: &[(&str, &str)],
    now: OffsetDateTime,
) -> anyhow::Result<(reqwest::Url, String)> {
    let mut url = reqwest::Url::parse(base).map_err(|e| anyhow::anyhow!("bad --url {base}: {e}"))?;
    url.set_query(None);
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => anyhow::bail!("--url {base} has no host"),
    };
    let path = if url.path().is_empty() { "/".to_string() } else { url.path().to_string() };
    let ts = registration_timestamp(now)?;
    let base_params = [
        ("AWSAccessKeyId", apikey),
        ("Action", action),
        ("SignatureMethod", "HmacSHA1"),
        ("SignatureVersion", "2"),
        ("Timestamp", ts.as_str()),
        ("Version", "2012-08-15"),
    ];
    let query = canonical_query(base_params.iter().chain(extra.iter()).copied());
    let sts = format!("{method}\n{}\n{}\n{}", host.to_ascii_lowercase(), path, query);
    let sig = sigv2::sign(sigv2::Method::HmacSha1, secret, &sts);
    Ok((url, format!("{query}&Signature={}", uri_encode(&sig))))
}

async fn send(client: &reqwest::Client, (url, body): (String, String)) -> anyhow::Result<String> {
    // The body carries the signature (and for SetUserKeys the secret key): never in a message.
    let resp = client
        .post(&url)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the gateway: {}", e.without_url()))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("the gateway answered {}: {}", status.as_u16(), body.trim());
    }
    Ok(body)
}

pub async fn run_cli(a: RegisterArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let now = OffsetDateTime::now_utc();
    if a.delete {
        let req = signed_form(&a.url, &a.apikey, &a.secretkey, "DeleteCertificate", &[], now)?;
        println!("{}", send(&client, req).await?.trim());
        return Ok(());
    }
    let cert_path = a.cert.as_ref().ok_or_else(|| anyhow::anyhow!("--cert is required (or --delete)"))?;
    let pem =
        std::fs::read_to_string(cert_path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", cert_path.display()))?;
    certificate_der(&pem).map_err(|e| anyhow::anyhow!("{}: {}", cert_path.display(), e.message))?;
    let req = signed_form(
        &a.url,
        &a.apikey,
        &a.secretkey,
        "SetUserKeys",
        &[("accesskey", &a.apikey), ("secretkey", &a.secretkey)],
        now,
    )?;
    println!("{}", send(&client, req).await?.trim());
    let req = match &a.key {
        None => signed_form(&a.url, &a.apikey, &a.secretkey, "SetCertificate", &[("cert", &pem)], now)?,
        Some(key_path) => {
            let key = std::fs::read_to_string(key_path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", key_path.display()))?;
            let fp = wssec::fingerprint(&certificate_der(&pem).map_err(|e| anyhow::anyhow!("{}", e.message))?);
            let ts = registration_timestamp(now)?;
            let proof = sign_proof(&key, &proof_message(&a.apikey, &ts, &fp))
                .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
            signed_form(
                &a.url,
                &a.apikey,
                &a.secretkey,
                "SetCertificate",
                &[("cert", &pem), ("CertSignature", &proof)],
                now,
            )?
        }
    };
    println!("{}", send(&client, req).await?.trim());
    println!("User registration is successful!");
    Ok(())
}

/// Sign a proof with the PEM private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
pub fn sign_proof(private_key_pem: &str, message: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::signature::{SignatureEncoding as _, Signer as _};
    let (_, pem) = x509_parser::pem::parse_x509_pem(private_key_pem.trim().as_bytes())
        .map_err(|_| anyhow::anyhow!("the key file is not PEM"))?;
    let key = match pem.label.as_str() {
        "PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs8_der(&pem.contents)?,
        "RSA PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs1_der(&pem.contents)?,
        other => anyhow::bail!("the key file holds a {other}, not an unencrypted RSA private key"),
    };
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    Ok(base64::engine::general_purpose::STANDARD.encode(signer.sign(message.as_bytes()).to_vec()))
}
