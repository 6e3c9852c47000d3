//! A canned CloudStack for executor tests: answers in the shapes of docs/cloudstack-wire.md
//! "Response envelopes",
//! keeps VMs in memory, records every call, and can be told to fail.
#![allow(dead_code)]

use std::sync::Mutex;

use ec2bridge::auth::Principal;
use ec2bridge::cloudstack::{CsCredentials, CsError, JobStarted};
use ec2bridge::ec2::{Ec2Request, Frontend, Params};
use ec2bridge::mapping::backend::{Backend, BoxFuture};
use ec2bridge::mapping::{Executor, ExecutorOptions};
use serde_json::{Value, json};

pub const ZONE1: &str = "1128bd56-b4d9-4ac6-a7b9-c715b187ce11";
pub const ZONE2: &str = "2228bd56-b4d9-4ac6-a7b9-c715b187ce22";
pub const TPL_UBUNTU: &str = "a17b40d6-83e4-4f2a-9ef0-dce6af575789";
pub const TPL_MINE: &str = "b27b40d6-83e4-4f2a-9ef0-dce6af575790";
pub const TPL_PENDING: &str = "c37b40d6-83e4-4f2a-9ef0-dce6af575791";
pub const OFF_SMALL: &str = "71004023-bb72-4a97-b1e9-bc66dfce9470";
pub const OFF_LARGE: &str = "81004023-bb72-4a97-b1e9-bc66dfce9471";
pub const SG_DEFAULT: &str = "ebfa0000-0000-4000-8000-000000000001";

#[derive(Default)]
pub struct State {
    pub vms: Vec<Value>,
    pub calls: Vec<(String, Vec<(String, String)>)>,
    /// Deploys that succeed before every further deploy fails with this error.
    pub deploy_ok_then_fail: Option<(usize, CsError)>,
    pub fail_all: Option<CsError>,
    pub next_id: u32,
}

pub struct Canned {
    pub state: Mutex<State>,
}

fn p<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

pub fn zones() -> Vec<Value> {
    vec![
        json!({"id": ZONE1, "name": "zone1", "networktype": "Basic", "securitygroupsenabled": true, "allocationstate": "Enabled", "description": "first"}),
        json!({"id": ZONE2, "name": "zone2", "networktype": "Advanced", "securitygroupsenabled": false, "allocationstate": "Enabled"}),
    ]
}

pub fn templates() -> Vec<(Vec<&'static str>, Value)> {
    vec![
        (
            vec!["executable", "featured"],
            json!({"id": TPL_UBUNTU, "name": "ubuntu-22.04", "displaytext": "Ubuntu 22.04", "ispublic": true, "isfeatured": true,
                   "isready": true, "ostypename": "Ubuntu 22.04 (64-bit)", "account": "system", "zoneid": ZONE1, "zonename": "zone1",
                   "size": 10737418240u64, "hypervisor": "KVM", "created": "2024-01-02T03:04:05+0000", "tags": []}),
        ),
        (
            vec!["executable", "featured"],
            json!({"id": TPL_UBUNTU, "name": "ubuntu-22.04", "displaytext": "Ubuntu 22.04", "ispublic": true, "isfeatured": true,
                   "isready": true, "ostypename": "Ubuntu 22.04 (64-bit)", "account": "system", "zoneid": ZONE2, "zonename": "zone2",
                   "size": 10737418240u64, "hypervisor": "KVM", "created": "2024-01-02T03:04:05+0000", "tags": []}),
        ),
        (
            vec!["self", "executable"],
            json!({"id": TPL_MINE, "name": "my-image", "displaytext": "mine", "ispublic": false, "isfeatured": false,
                   "isready": true, "ostypename": "CentOS 5.3 (32-bit)", "account": "alice", "zoneid": ZONE1, "zonename": "zone1",
                   "size": 2147483648u64, "hypervisor": "XenServer", "created": "2024-02-02T03:04:05-0100",
                   "tags": [{"key": "team", "value": "web"}]}),
        ),
        (
            vec!["self"],
            json!({"id": TPL_PENDING, "name": "baking", "displaytext": "not ready", "ispublic": false, "isfeatured": false,
                   "isready": false, "ostypename": "Other (64-bit)", "account": "alice", "zoneid": ZONE1, "zonename": "zone1",
                   "hypervisor": "KVM", "created": "2024-03-02T03:04:05+0000"}),
        ),
    ]
}

impl Canned {
    pub fn new() -> Self {
        Canned { state: Mutex::new(State::default()) }
    }

    pub fn calls(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn commands(&self) -> Vec<String> {
        self.calls().into_iter().map(|(c, _)| c).collect()
    }

    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    pub fn add_vm(&self, name: &str, state: &str, extra: Value) -> String {
        let mut st = self.state.lock().unwrap();
        st.next_id += 1;
        let id = format!("19253fbf-abb7-4013-a8a1-{:012}", st.next_id);
        let mut vm = json!({
            "id": id, "name": name, "displayname": name, "account": "alice", "domainid": "d1", "domain": "ROOT",
            "created": "2024-05-06T07:08:09+0200", "state": state, "zoneid": ZONE1, "zonename": "zone1",
            "templateid": TPL_UBUNTU, "templatename": "ubuntu-22.04", "serviceofferingid": OFF_SMALL,
            "serviceofferingname": "m1.small", "hypervisor": "KVM", "keypair": "k1",
            "securitygroup": [{"id": SG_DEFAULT, "name": "default"}],
            "nic": [{"id": "n1", "ipaddress": format!("10.1.2.{}", st.next_id), "isdefault": true, "type": "Shared", "traffictype": "Guest"}],
            "tags": []
        });
        if let (Some(o), Some(e)) = (vm.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        st.vms.push(vm);
        id
    }

    fn set_state(&self, id: &str, state: &str) {
        let mut st = self.state.lock().unwrap();
        if state == "Destroyed" {
            st.vms.retain(|v| v["id"] != id);
            return;
        }
        for v in st.vms.iter_mut() {
            if v["id"] == id {
                v["state"] = json!(state);
            }
        }
    }

    fn answer(&self, command: &str, params: &[(String, String)]) -> Result<Value, CsError> {
        let mut st = self.state.lock().unwrap();
        st.calls.push((command.to_string(), params.to_vec()));
        if let Some(e) = &st.fail_all {
            return Err(e.clone());
        }
        Ok(match command {
            "listZones" => Value::Array(zones()),
            "listServiceOfferings" => json!([
                {"id": OFF_SMALL, "name": "m1.small", "cpunumber": 1, "memory": 1024},
                {"id": OFF_LARGE, "name": "m1.large", "cpunumber": 4, "memory": 8192}
            ]),
            "listSSHKeyPairs" => json!([{"name": "k1", "fingerprint": "aa:bb"}]),
            "listAccounts" => json!([{"id": "acc1", "name": "alice", "vmlimit": "20", "iplimit": "Unlimited"}]),
            "listSecurityGroups" => json!([{"id": SG_DEFAULT, "name": "default"}]),
            "listTemplates" => {
                let f = p(params, "templatefilter").unwrap_or("");
                Value::Array(templates().into_iter().filter(|(fs, _)| fs.contains(&f)).map(|(_, t)| t).collect())
            }
            "listVirtualMachines" => {
                let ids: Option<Vec<&str>> = p(params, "ids").map(|s| s.split(',').collect());
                Value::Array(
                    st.vms
                        .iter()
                        .filter(|v| ids.as_ref().is_none_or(|ids| ids.contains(&v["id"].as_str().unwrap_or(""))))
                        .cloned()
                        .collect(),
                )
            }
            // No volumes: TerminateInstances looks for data volumes to detach first.
            "listVolumes" => json!([]),
            "listOsTypes" => json!([
                {"id": "os-win", "description": "Windows Server 2019 (64-bit)"},
                {"id": "os-lin", "description": "Ubuntu 22.04 (64-bit)"}
            ]),
            other => json!({"unexpected": other}),
        })
    }

    fn job(&self, command: &str, params: &[(String, String)]) -> Result<JobStarted, CsError> {
        let id = p(params, "id").map(str::to_string);
        {
            let mut st = self.state.lock().unwrap();
            st.calls.push((command.to_string(), params.to_vec()));
            if let Some(e) = &st.fail_all {
                return Err(e.clone());
            }
        }
        match command {
            "deployVirtualMachine" => {
                let fail = {
                    let mut st = self.state.lock().unwrap();
                    match &mut st.deploy_ok_then_fail {
                        Some((0, e)) => Some(e.clone()),
                        Some((n, _)) => {
                            *n -= 1;
                            None
                        }
                        None => None,
                    }
                };
                if let Some(e) = fail {
                    return Err(e);
                }
                let mut extra = json!({
                    "templateid": p(params, "templateid"), "serviceofferingid": p(params, "serviceofferingid"),
                    "zoneid": p(params, "zoneid"),
                });
                if let Some(g) = p(params, "group") {
                    extra["group"] = json!(g);
                }
                let vid = self.add_vm("new", "Starting", extra);
                Ok(JobStarted { jobid: format!("job-{vid}"), id: Some(vid) })
            }
            "startVirtualMachine" => {
                self.set_state(id.as_deref().unwrap_or(""), "Starting");
                Ok(JobStarted { jobid: "job".into(), id: None })
            }
            "stopVirtualMachine" => {
                self.set_state(id.as_deref().unwrap_or(""), "Stopping");
                Ok(JobStarted { jobid: "job".into(), id: None })
            }
            "rebootVirtualMachine" => Ok(JobStarted { jobid: "job".into(), id: None }),
            "destroyVirtualMachine" => {
                // Destroyed right away: the owner no longer sees it.
                self.set_state(id.as_deref().unwrap_or(""), "Destroyed");
                Ok(JobStarted { jobid: "job".into(), id: None })
            }
            "createTags" => {
                let ids: Vec<String> = p(params, "resourceids").unwrap_or("").split(',').map(str::to_string).collect();
                let mut tags = Vec::new();
                for i in 0.. {
                    let Some(k) = p(params, &format!("tags[{i}].key")) else { break };
                    tags.push(json!({"key": k, "value": p(params, &format!("tags[{i}].value")).unwrap_or("")}));
                }
                let mut st = self.state.lock().unwrap();
                for v in st.vms.iter_mut() {
                    if ids.iter().any(|i| v["id"] == i.as_str())
                        && let Some(a) = v["tags"].as_array_mut()
                    {
                        a.extend(tags.iter().cloned());
                    }
                }
                Ok(JobStarted { jobid: "tagjob".into(), id: None })
            }
            _ => Err(CsError::Api {
                command: command.into(),
                errorcode: 432,
                cserrorcode: Some(9999),
                text: "unknown".into(),
            }),
        }
    }
}

impl Backend for Canned {
    fn call<'a>(
        &'a self,
        _: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<Value, CsError>> {
        Box::pin(async move { self.answer(command, params) })
    }

    fn list_all<'a>(
        &'a self,
        _: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
        _item_key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, CsError>> {
        Box::pin(async move {
            match self.answer(command, params)? {
                Value::Array(a) => Ok(a),
                other => Err(CsError::BadResponse(other.to_string())),
            }
        })
    }

    fn start_job<'a>(
        &'a self,
        _: &'a CsCredentials,
        command: &'a str,
        params: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<JobStarted, CsError>> {
        Box::pin(async move { self.job(command, params) })
    }

    fn wait_job<'a>(
        &'a self,
        _: &'a CsCredentials,
        command: &'a str,
        _jobid: &'a str,
    ) -> BoxFuture<'a, Result<Value, CsError>> {
        Box::pin(async move {
            self.state
                .lock()
                .unwrap()
                .calls
                .push(("queryAsyncJobResult".into(), vec![("command".into(), command.into())]));
            Ok(json!({"success": true}))
        })
    }
}

pub fn setup() -> (std::sync::Arc<Canned>, Executor) {
    let canned = std::sync::Arc::new(Canned::new());
    let ex = Executor::with_backend(canned.clone(), None, ExecutorOptions::default()).expect("table loads");
    (canned, ex)
}

pub fn who() -> Principal {
    Principal {
        access_key: "AKIDALICE".into(),
        cloudstack: CsCredentials { api_key: "AKIDALICE".into(), secret_key: "secret".into() },
        account: Some("alice".into()),
        account_id: Some(ALICE_ACCOUNT.into()),
    }
}

/// The canned alice's account uuid, the seeded one (her number is `ids::account_number` of it).
pub const ALICE_ACCOUNT: &str = "9da63228-a384-4532-9487-8bb4510950ec";

/// Alice's 12-digit account number, `ownerId` of her resources (docs/accounts.md).
#[allow(dead_code)]
pub fn alice_number() -> String {
    ec2bridge::ids::account_number(ALICE_ACCOUNT)
}

pub fn req(action: &str, params: &[(&str, &str)]) -> Ec2Request {
    Ec2Request {
        request_id: "req-1".into(),
        action: action.into(),
        version: "2016-11-15".into(),
        params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Params>(),
        frontend: Frontend::Query,
        host: None,
    }
}

/// Text of every `<name>` element, in document order.
pub fn all(xml: &str, name: &str) -> Vec<String> {
    let wrapped = format!("<r>{xml}</r>");
    let doc = roxmltree::Document::parse(&wrapped).expect("well-formed XML");
    doc.descendants().filter(|n| n.has_tag_name(name)).map(|n| n.text().unwrap_or("").to_string()).collect()
}

pub fn one(xml: &str, name: &str) -> String {
    all(xml, name).into_iter().next().unwrap_or_else(|| panic!("no <{name}> in {xml}"))
}

/// Child element names of the first `<name>`.
pub fn children(xml: &str, name: &str) -> Vec<String> {
    let wrapped = format!("<r>{xml}</r>");
    let doc = roxmltree::Document::parse(&wrapped).expect("well-formed XML");
    let n = doc.descendants().find(|n| n.has_tag_name(name)).unwrap_or_else(|| panic!("no <{name}>"));
    n.children().filter(|c| c.is_element()).map(|c| c.tag_name().name().to_string()).collect()
}

// ---- The real path: executor + CloudStack client over the in-process simulator (fast mode) ----

/// Start the simulator, a CloudStack client (fast polling) and an executor; act as alice.
pub async fn sim_env()
-> (ec2bridge::sim::SimHandle, Executor, Principal, std::sync::Arc<ec2bridge::cloudstack::CsClient>) {
    let sim = ec2bridge::sim::start(ec2bridge::sim::SimOptions {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        seed: None,
        fast: true,
        state_dir: None,
    })
    .await
    .expect("simulator starts");
    let opts = ec2bridge::cloudstack::ClientOptions {
        poll_initial: std::time::Duration::from_millis(5),
        ..Default::default()
    };
    let client = std::sync::Arc::new(ec2bridge::cloudstack::CsClient::new(&sim.endpoint, opts).expect("client"));
    let ex = Executor::new(client.clone(), None).expect("table");
    let who = sim_principal(&sim, "alice");
    (sim, ex, who, client)
}

/// A seeded simulator user as the gateway's principal.
pub fn sim_principal(sim: &ec2bridge::sim::SimHandle, name: &str) -> Principal {
    let u = sim.user(name).expect("seeded user").clone();
    Principal {
        access_key: u.api_key.clone(),
        cloudstack: CsCredentials { api_key: u.api_key, secret_key: u.secret_key },
        account: Some(u.account),
        account_id: Some(u.account_id),
    }
}
