//! Signature checking over HTTP (docs/cloudstack-wire.md "Signing", "Errors"): golden vectors
//! accepted, every kind
//! of bad request answered 401 in CloudStack's shape, and nothing changed by a rejected call.

mod sim_support;

use ec2bridge::cloudstack::signing::golden;
use serde_json::json;
use sim_support::*;

const GOLDEN_SEED: &str = r#"
[[accounts]]
name = "admin"
type = "admin"
[[accounts.users]]
username = "admin"

[[accounts]]
name = "golden"
[[accounts.users]]
username = "golden"
api_key = "sim-api-key-0001"
secret_key = "sim-secret-key-0001"

[[zones]]
name = "z1"
id = "1128bd56-b4d9-4ac6-a7b9-c715b187ce11"

[[os_types]]
description = "Linux"

[[service_offerings]]
name = "small"
id = "71004023-bb72-4a97-b1e9-bc66dfce9470"
cpu = 1
memory = 512

[[templates]]
name = "tpl"
id = "a17b40d6-83e4-4f2a-9ef0-dce6af575789"
ostype = "Linux"
"#;

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn golden_vectors_over_http() {
    let h = start_seed(Some(GOLDEN_SEED)).await;
    let cs = Cs::of(&h, "golden");
    // listZones vector: no signatureVersion, signature from the doc.
    let signed = |p: &[(&'static str, &'static str)], sig: &'static str| {
        pairs(&p.iter().copied().chain([("signature", sig)]).collect::<Vec<_>>())
    };
    let a = cs.send_raw(&signed(golden::LIST_ZONES, golden::LIST_ZONES_SIGNATURE)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.inner()["count"], 1);
    // deploy vector with signatureVersion=3 and expires 2030, exactly as the doc signs it.
    let a = cs.send_raw(&signed(golden::DEPLOY, golden::DEPLOY_SIGNATURE)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let id = a.inner()["id"].as_str().unwrap().to_string();
    let job = cs.wait(a.inner()["jobid"].as_str().unwrap()).await;
    assert_eq!(job["jobresult"]["virtualmachine"]["displayname"], "web server #1 (test)");
    assert_eq!(job["jobinstanceid"], id.as_str());
    assert_eq!(job["cmd"], "org.apache.cloudstack.api.command.user.vm.DeployVMCmd");
    // Raw query: `+` in a value must come as %2B; an unencoded `+` becomes a space -> 401.
    let q = "command=listZones&response=json&apiKey=sim-api-key-0001&signature=kB7Jd41dOcbmI5WmLPr1AmlWVVc%3D";
    let r = reqwest::get(format!("{}?{q}", h.endpoint)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json; charset=UTF-8");
}

#[tokio::test]
async fn bad_requests_get_401_in_cloudstack_shape() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let unauthorized = json!({"uuidList": [], "errorcode": 401, "errortext": "unable to verify user credentials and/or request signature"});

    // Wrong secret: envelope of the (known) command, no cserrorcode, X-Description set.
    let mut wrong = cs.clone();
    wrong.secret = "not-the-secret".into();
    let a = wrong.call("listZones", &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body, json!({"listzonesresponse": unauthorized}));
    assert_eq!(a.description.as_deref(), Some("unable to verify user credentials and/or request signature"));

    // Unknown command with a valid signature: 401 errorresponse.
    let a = cs.call("fooBar", &[]).await;
    assert_eq!((a.status, a.body.clone()), (401, json!({"errorresponse": unauthorized})));
    // Command names are case-sensitive.
    assert_eq!(cs.call("listzones", &[]).await.envelope(), "errorresponse");
    // No command at all.
    let mut p = cs.signed("listZones", &[]);
    p.retain(|(k, _)| k != "command");
    let a = cs.send_raw(&p).await;
    assert_eq!((a.status, a.envelope()), (401, "errorresponse".to_string()));

    // Unknown api key, missing signature, tampered parameter.
    let mut other = cs.clone();
    other.key = "no-such-key".into();
    assert_eq!(other.call("listZones", &[]).await.status, 401);
    let mut p = cs.signed("listZones", &[]);
    p.retain(|(k, _)| k != "signature");
    assert_eq!(cs.send_raw(&p).await.status, 401);
    let mut p = cs.signed("listZones", &[("name", "zone1")]);
    p.iter_mut().find(|(k, _)| k == "name").unwrap().1 = "zone2".into();
    assert_eq!(cs.send_raw(&p).await.status, 401);

    // signatureVersion=3: expired, missing and unparseable expires.
    for expires in [Some("2001-01-01T00:00:00+0000"), None, Some("soon")] {
        let mut p: Vec<(String, String)> = vec![
            ("command".into(), "listZones".into()),
            ("response".into(), "json".into()),
            ("apiKey".into(), cs.key.clone()),
            ("signatureVersion".into(), "3".into()),
        ];
        if let Some(e) = expires {
            p.push(("expires".into(), e.into()));
        }
        let sig = ec2bridge::cloudstack::signing::sign(p.iter().map(|(k, v)| (k.as_str(), v.as_str())), &cs.secret);
        p.push(("signature".into(), sig));
        let a = cs.send_raw(&p).await;
        assert_eq!(a.status, 401, "expires={expires:?}");
        assert_eq!(a.envelope(), "listzonesresponse");
    }

    // Name matching: `apikey` and `signatureversion` are found case-insensitively.
    let p: Vec<(String, String)> = cs
        .signed("listZones", &[])
        .into_iter()
        .map(|(k, v)| (if k == "apiKey" { "APIKEY".to_string() } else { k }, v))
        .collect();
    // The name is part of the signed string as sent, so re-sign with the new spelling.
    let mut p2: Vec<(String, String)> = p.into_iter().filter(|(k, _)| k != "signature").collect();
    let sig = ec2bridge::cloudstack::signing::sign(p2.iter().map(|(k, v)| (k.as_str(), v.as_str())), &cs.secret);
    p2.push(("signature".into(), sig));
    assert_eq!(cs.send_raw(&p2).await.status, 200);

    // A rejected deploy created nothing.
    let mut bad = cs.clone();
    bad.secret = "x".into();
    bad.call("deployVirtualMachine", &[("zoneid", ZONE1), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO)])
        .await;
    assert_eq!(cs.ok("listVirtualMachines", &[]).await, json!({}));
    assert_eq!(cs.ok("listAsyncJobs", &[]).await, json!({}));
}

#[tokio::test]
async fn disabled_user_and_admin_only_commands() {
    let seed = default_seed_plus(
        r#"
[[accounts]]
name = "mallory"
domain = "dev"
state = "disabled"
[[accounts.users]]
username = "mallory"
"#,
    );
    let h = start_seed(Some(&seed)).await;
    let mallory = Cs::of(&h, "mallory");
    assert_eq!(mallory.call("listZones", &[]).await.status, 401);

    // getUser is for root admins: users get 401 "not available".
    let alice = Cs::of(&h, "alice");
    let e = alice.err("getUser", &[("userapikey", &alice.key)], 401).await;
    assert_eq!(e["errortext"], "The given command 'getUser' either does not exist, is not available for user.");
    // The admin finds alice's secret by her API key (how the gateway learns keys).
    let admin = Cs::new(&h, h.admin().unwrap());
    let u = admin.ok("getUser", &[("userapikey", &alice.key)]).await;
    assert_eq!(u["user"]["account"], "alice");
    assert_eq!(u["user"]["secretkey"], alice.secret.as_str());
    assert_eq!(u["user"]["domain"], "dev");
    admin.err("getUser", &[("userapikey", "nope")], 431).await;
    let e = admin.err("getUser", &[], 431).await;
    assert_eq!(e["errortext"], "Unable to execute API command getuser due to missing parameter userapikey");
    // listUsers: admins see everyone's keys with listall; a user sees only itself.
    let all = admin.items("listUsers", &[("listall", "true")], "user").await;
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|u| u["secretkey"].is_string()));
    let me = alice.items("listUsers", &[], "user").await;
    assert_eq!(me.len(), 1);
    assert_eq!(me[0]["apikey"], alice.key.as_str());
    let accts = alice.items("listAccounts", &[("listall", "true")], "account").await;
    assert_eq!(accts.len(), 1);
    assert_eq!(accts[0]["name"], "alice");
    assert_eq!(accts[0]["accounttype"], 0);
    let accts = admin.items("listAccounts", &[("listall", "true")], "account").await;
    assert_eq!(accts.len(), 4);
}
