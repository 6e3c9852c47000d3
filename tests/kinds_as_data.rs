//! A new resource kind is data only: a test mapping file declares `[kind.vpc]` (prefix, list
//! call, errors, tag types) and an action over it, and the unchanged executor lists, resolves,
//! refuses and tags VPCs with EC2 ids of their own (docs/ids.md).

use std::sync::Mutex;

use ec2bridge::auth::Principal;
use ec2bridge::cloudstack::{CsCredentials, CsError, JobStarted};
use ec2bridge::ec2::{Ec2Request, Frontend, Params};
use ec2bridge::ids::{Kind, ec2_id, is_well_formed};
use ec2bridge::mapping::backend::{Backend, BoxFuture};
use ec2bridge::mapping::{Executor, ExecutorOptions};
use serde_json::{Value, json};

const VPC_A: &str = "0a0a0a0a-1111-4000-8000-00000000000a";
const VPC_B: &str = "0b0b0b0b-2222-4000-8000-00000000000b";

const VPC_TOML: &str = r#"
[kind.vpc]
prefix = "vpc"
list = { command = "listVPCs", params = { listall = "true" } }
malformed = { code = "InvalidVpcID.Malformed", message = 'Invalid id: "{id}" (expecting "vpc-...")' }
not_found = { code = "InvalidVpcID.NotFound", one = "The vpc ID '{ids}' does not exist", many = "The vpc IDs '{ids}' do not exist" }
tags = { cloudstack = "Vpc", resource_type = "vpc" }

[action.DescribeVpcs]
call = { command = "listVPCs" }
params.listall = "=true"
ids = { param = "VpcId", kind = "vpc", backend = "list", wire = "vpcSet" }
returns = { list = "vpcSet", shape = "Vpc" }

[shape.Vpc]
_source = "vpc"
vpcId = "id|id:vpc"
cidrBlock = "cidr"
"#;

type Call = (String, Vec<(String, String)>);

#[derive(Default)]
struct Vpcs {
    calls: Mutex<Vec<Call>>,
}

impl Vpcs {
    fn answer(&self, command: &str, params: &[(String, String)]) -> Result<Value, CsError> {
        self.calls.lock().unwrap().push((command.to_string(), params.to_vec()));
        Ok(match command {
            "listVPCs" => {
                let all = [(VPC_A, "10.1.0.0/16"), (VPC_B, "10.2.0.0/16")];
                let wanted: Option<Vec<&str>> =
                    params.iter().find(|(k, _)| k == "ids").map(|(_, v)| v.split(',').collect());
                Value::Array(
                    all.iter()
                        .filter(|(id, _)| wanted.as_ref().is_none_or(|w| w.contains(id)))
                        .map(|(id, cidr)| json!({"id": id, "name": "v", "cidr": cidr, "state": "Enabled"}))
                        .collect(),
                )
            }
            "listTags" => json!([
                {"resourcetype": "Vpc", "resourceid": VPC_B, "key": "Name", "value": "prod"},
                {"resourcetype": "Network", "resourceid": "n-1", "key": "Name", "value": "hidden"},
            ]),
            _ => return Err(CsError::BadResponse(format!("unexpected {command}"))),
        })
    }
}

impl Backend for Vpcs {
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
        _: &'a str,
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
        Box::pin(async move {
            self.calls.lock().unwrap().push((command.to_string(), params.to_vec()));
            Ok(JobStarted { jobid: "job-1".into(), id: None })
        })
    }

    fn wait_job<'a>(&'a self, _: &'a CsCredentials, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<Value, CsError>> {
        Box::pin(async { Ok(json!({"success": true})) })
    }
}

fn who() -> Principal {
    Principal {
        access_key: "AKIDALICE".into(),
        cloudstack: CsCredentials { api_key: "AKIDALICE".into(), secret_key: "secret".into() },
        account: Some("alice".into()),
        account_id: Some("9da63228-a384-4532-9487-8bb4510950ec".into()),
    }
}

fn req(action: &str, params: &[(&str, &str)]) -> Ec2Request {
    Ec2Request {
        request_id: "req-1".into(),
        action: action.into(),
        version: "2016-11-15".into(),
        params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Params>(),
        frontend: Frontend::Query,
        host: None,
    }
}

fn texts(xml: &str, name: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants().filter(|n| n.tag_name().name() == name).map(|n| n.text().unwrap_or("").to_string()).collect()
}

#[tokio::test]
async fn a_kind_declared_in_a_mapping_file_needs_no_rust() {
    let dir = std::env::temp_dir().join(format!("ec2bridge-kinds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Same name as the compiled-in vpc.toml, so it replaces it (vpc_gateways.toml goes too).
    std::fs::write(dir.join("vpc.toml"), VPC_TOML).unwrap();
    std::fs::write(dir.join("vpc_gateways.toml"), "").unwrap();
    let backend = std::sync::Arc::new(Vpcs::default());
    let ex = Executor::with_backend(backend.clone(), Some(&dir), ExecutorOptions::default()).expect("table loads");
    std::fs::remove_dir_all(&dir).ok();

    // The kind is registered with its prefix: ids follow the same scheme as every other kind.
    let vpc = Kind::from_name("vpc").expect("declared by the file");
    let (id_a, id_b) = (ec2_id(vpc, VPC_A), ec2_id(vpc, VPC_B));
    assert!(id_a.starts_with("vpc-") && id_a.len() == 21 && is_well_formed(vpc, &id_a), "{id_a}");
    assert_eq!(ec2bridge::ids::kind_of(&id_a), Some(vpc));

    let xml = ex.execute(&req("DescribeVpcs", &[]), &who()).await.unwrap();
    assert_eq!(texts(&xml, "vpcId"), [id_a.clone(), id_b.clone()]);
    assert_eq!(texts(&xml, "cidrBlock"), ["10.1.0.0/16", "10.2.0.0/16"]);

    // Ids resolve back to uuids through the kind's list call.
    let xml = ex.execute(&req("DescribeVpcs", &[("VpcId.1", &id_b)]), &who()).await.unwrap();
    assert_eq!(texts(&xml, "vpcId"), std::slice::from_ref(&id_b));

    // The kind's own errors.
    let e = ex.execute(&req("DescribeVpcs", &[("VpcId.1", "vpc-XYZ")]), &who()).await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("InvalidVpcID.Malformed", "Invalid id: \"vpc-XYZ\" (expecting \"vpc-...\")")
    );
    let e = ex.execute(&req("DescribeVpcs", &[("VpcId.1", "vpc-0123456789abcdef0")]), &who()).await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("InvalidVpcID.NotFound", "The vpc ID 'vpc-0123456789abcdef0' does not exist")
    );

    // Tags: CreateTags sends the declared CloudStack resource type, DescribeTags names the EC2 one.
    ex.execute(&req("CreateTags", &[("ResourceId.1", &id_a), ("Tag.1.Key", "Name"), ("Tag.1.Value", "dev")]), &who())
        .await
        .unwrap();
    let calls = backend.calls.lock().unwrap().clone();
    let (_, create) = calls.iter().find(|(c, _)| c == "createTags").expect("createTags called");
    assert!(create.contains(&("resourcetype".into(), "Vpc".into())), "{create:?}");
    assert!(create.contains(&("resourceids".into(), VPC_A.into())), "{create:?}");
    let xml = ex.execute(&req("DescribeTags", &[]), &who()).await.unwrap();
    assert_eq!(texts(&xml, "resourceId"), std::slice::from_ref(&id_b));
    assert_eq!(texts(&xml, "resourceType"), ["vpc"]);
}

#[test]
fn kind_declarations_are_checked_with_file_and_line() {
    let load = |text: &str| {
        let mut files: Vec<(String, String)> =
            ec2bridge::mapping::table::BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
        files.push(("k.toml".into(), text.into()));
        ec2bridge::mapping::Table::from_sources(&files)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        load("[kind.natgateway]\nlist = []\n"),
        ["k.toml:1: kind natgateway needs prefix = \"<EC2 id prefix>\""]
    );
    assert_eq!(
        load("[kind.natgateway]\nprefix = \"vol\"\n"),
        ["k.toml:2: prefix 'vol' of kind 'natgateway' is already the prefix of kind 'volume'"]
    );
    // An existing kind keeps its prefix: the ids users hold must not change.
    let mut files: Vec<(String, String)> =
        ec2bridge::mapping::table::BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
    let inst = files.iter_mut().find(|(n, _)| n == "instances.toml").unwrap();
    let line = inst.1.lines().position(|l| l == "prefix = \"i\"").unwrap() + 1;
    inst.1 = inst.1.replacen("prefix = \"i\"", "prefix = \"inst\"", 1);
    let errs: Vec<String> =
        ec2bridge::mapping::Table::from_sources(&files).unwrap_err().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errs,
        [format!("instances.toml:{line}: kind 'instance' has prefix 'i' (its ids are fixed); it cannot become 'inst'")]
    );
    // (The derived default codes of a new kind must be in the catalog too; these name theirs.)
    let malformed = "malformed = { code = \"InvalidParameterValue\", message = \"bad {id}\" }\n";
    let errs = load(&format!(
        "[kind.natgateway]\nprefix = \"ngw\"\nnot_found = {{ code = \"InvalidSubnetId.NotFound\" }}\n{malformed}"
    ));
    assert_eq!(
        errs,
        [
            "k.toml:3: unknown EC2 error code 'InvalidSubnetId.NotFound' (not in the catalog; `ec2bridge errors` lists it)"
        ]
    );
    assert_eq!(
        load(&format!(
            "[kind.natgateway]\nprefix = \"ngw\"\nnot_found = {{ code = \"InvalidParameterValue\" }}\n{malformed}"
        )),
        Vec::<String>::new()
    );
}
