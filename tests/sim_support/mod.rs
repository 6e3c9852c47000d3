//! A minimal signed CloudStack client for the simulator's integration tests (GET or POST,
//! signatureVersion=3), independent of the gateway's client.
#![allow(dead_code)]

use std::time::Duration;

use ec2bridge::cloudstack::signing;
use ec2bridge::sim::{SimHandle, SimOptions, SimUser};
use serde_json::Value;

pub async fn start_fast() -> SimHandle {
    start_seed(None).await
}

pub async fn start_seed(seed: Option<&str>) -> SimHandle {
    let opts = SimOptions { listen: "127.0.0.1:0".parse().unwrap(), seed: None, fast: true, state_dir: None };
    match seed {
        Some(text) => ec2bridge::sim::start_with_seed(opts, text).await.expect("sim starts"),
        None => ec2bridge::sim::start(opts).await.expect("sim starts"),
    }
}

/// The default seed plus extra TOML appended (settings must not be repeated).
pub fn default_seed_plus(extra: &str) -> String {
    format!("{}\n{}", include_str!("../../seeds/default.toml"), extra)
}

#[derive(Clone)]
pub struct Cs {
    pub http: reqwest::Client,
    pub endpoint: String,
    pub key: String,
    pub secret: String,
    pub post: bool,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub description: Option<String>,
}

impl Answer {
    /// The single value under the envelope.
    pub fn inner(&self) -> &Value {
        self.body.as_object().and_then(|o| o.values().next()).unwrap_or(&Value::Null)
    }
    pub fn envelope(&self) -> String {
        self.body.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default()
    }
}

pub fn encode_query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", signing::java_url_encode(k), signing::java_url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Cs {
    pub fn new(h: &SimHandle, u: &SimUser) -> Self {
        Cs {
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            endpoint: h.endpoint.clone(),
            key: u.api_key.clone(),
            secret: u.secret_key.clone(),
            post: false,
        }
    }
    pub fn of(h: &SimHandle, account: &str) -> Self {
        Self::new(h, h.user(account).expect("seeded account"))
    }

    /// Parameters with command, response, apiKey, version 3 + expires, and the signature.
    pub fn signed(&self, command: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
        let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
        let expires = expires
            .format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000"))
            .unwrap();
        let mut p: Vec<(String, String)> = vec![
            ("command".into(), command.into()),
            ("response".into(), "json".into()),
            ("apiKey".into(), self.key.clone()),
            ("signatureVersion".into(), "3".into()),
            ("expires".into(), expires),
        ];
        p.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let sig = signing::sign(p.iter().map(|(k, v)| (k.as_str(), v.as_str())), &self.secret);
        p.push(("signature".into(), sig));
        p
    }

    pub async fn send_raw(&self, params: &[(String, String)]) -> Answer {
        let q = encode_query(params);
        let resp = if self.post {
            self.http
                .post(&self.endpoint)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(q)
                .send()
                .await
        } else {
            self.http.get(format!("{}?{}", self.endpoint, q)).send().await
        }
        .expect("http");
        let status = resp.status().as_u16();
        let description = resp.headers().get("x-description").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        Answer { status, body, description }
    }

    pub async fn call(&self, command: &str, params: &[(&str, &str)]) -> Answer {
        self.send_raw(&self.signed(command, params)).await
    }

    /// A call that must succeed; returns the value under the envelope.
    pub async fn ok(&self, command: &str, params: &[(&str, &str)]) -> Value {
        let a = self.call(command, params).await;
        assert_eq!(a.status, 200, "{command} {params:?}: {}", a.body);
        assert_eq!(a.envelope(), format!("{}response", command.to_lowercase()));
        a.inner().clone()
    }

    /// A call that must fail with `code`; returns the error body.
    pub async fn err(&self, command: &str, params: &[(&str, &str)], code: u16) -> Value {
        let a = self.call(command, params).await;
        assert_eq!(a.status, code, "{command} {params:?}: {}", a.body);
        let inner = a.inner().clone();
        assert_eq!(inner["errorcode"], code, "{}", a.body);
        assert_eq!(a.description.as_deref(), inner["errortext"].as_str());
        inner
    }

    /// Poll a job to its end; returns the final queryAsyncJobResult body.
    pub async fn wait(&self, jobid: &str) -> Value {
        for _ in 0..2000 {
            let j = self.ok("queryAsyncJobResult", &[("jobid", jobid)]).await;
            if j["jobstatus"] != 0 {
                return j;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("job {jobid} did not finish");
    }

    /// Start an async command and wait for success; returns `jobresult`.
    pub async fn run(&self, command: &str, params: &[(&str, &str)]) -> Value {
        let r = self.ok(command, params).await;
        let jobid = r["jobid"].as_str().unwrap_or_else(|| panic!("{command}: no jobid in {r}")).to_string();
        let j = self.wait(&jobid).await;
        assert_eq!(j["jobstatus"], 1, "{command} job failed: {j}");
        j["jobresult"].clone()
    }

    pub async fn items(&self, command: &str, params: &[(&str, &str)], key: &str) -> Vec<Value> {
        let r = self.ok(command, params).await;
        r.get(key).and_then(|v| v.as_array()).cloned().unwrap_or_default()
    }
}

/// Ids of the default seed.
pub const ZONE1: &str = "2d76fcb5-5dea-4162-b5e4-4e931711d6f9";
pub const ZONE2: &str = "d79ba9ee-2d54-42fb-8f4c-8b192c5e2cd4";
/// Advanced, no security groups: isolated networks and VPCs.
pub const ZONE3: &str = "5b0e7a2c-94d1-4c1b-8f3e-2a6d9c4b7e10";
/// Built-in offerings (src/sim/offerings.rs).
pub const NET_OFF_ISOLATED: &str = "6f2c2a6e-52b1-4d0e-9a3c-0c1d5e7f9a02";
pub const NET_OFF_TIER: &str = "6f2c2a6e-52b1-4d0e-9a3c-0c1d5e7f9a03";
pub const NET_OFF_TIER_NOLB: &str = "6f2c2a6e-52b1-4d0e-9a3c-0c1d5e7f9a04";
pub const VPC_OFF_DEFAULT: &str = "8a1e3c55-0d7b-4f6a-b2c4-1e9f0a7d3b01";
pub const ACL_DEFAULT_ALLOW: &str = "b3d6a8f0-3c2e-4e1a-9f5d-7a2b4c6e8d02";
pub const ACL_DEFAULT_DENY: &str = "b3d6a8f0-3c2e-4e1a-9f5d-7a2b4c6e8d01";
pub const UBUNTU: &str = "e8e3401a-f3f0-4cec-8671-7b6085bf6e19";
pub const CENTOS_PW: &str = "40b189e5-4b8a-46dd-aff7-974c26626662";
pub const WINDOWS: &str = "7c6b7f0e-8a55-4c8e-9a52-0d4b6b3c1e21";
pub const T2_MICRO: &str = "37252c54-c789-48de-89e5-c17e3b9f005f";
pub const M1_SMALL: &str = "192f504f-ddbb-4e25-90d7-b497f638b510";
pub const DISK_SMALL: &str = "11e683fb-bda2-4f3a-bbe8-1636dacd7f39";
pub const DISK_CUSTOM: &str = "a9eb536a-de30-43c7-b4fa-8881fc912ee2";
pub const UBUNTU_OSTYPE: &str = "93167264-c354-49a2-9d85-a102036f6446";

/// Deploy a VM and wait for it; returns the VM object.
pub async fn deploy(cs: &Cs, extra: &[(&str, &str)]) -> Value {
    // Extra values replace the defaults: a repeated name would break the signature (the server
    // keeps one value per name).
    let mut p: Vec<(&str, &str)> = vec![("zoneid", ZONE1), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO)];
    p.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    p.extend_from_slice(extra);
    let r = cs.run("deployVirtualMachine", &p).await;
    r["virtualmachine"].clone()
}

/// Parameters of an ingress rule for one TCP port from `cidrs`.
pub fn tcp_ingress<'a>(gid: &'a str, port: &'a str, cidrs: &'a str) -> [(&'static str, &'a str); 5] {
    [("securitygroupid", gid), ("protocol", "tcp"), ("startport", port), ("endport", port), ("cidrlist", cidrs)]
}
