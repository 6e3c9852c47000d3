//! End to end against the in-process simulator: Elastic IPs, tags, instance attributes, instance
//! types, instance status, console output — as EC2 clients drive them, with the CloudStack calls
//! each action costs.

mod mapping_support;

use std::time::Duration;

use ec2bridge::auth::Principal;
use ec2bridge::ids::{Kind, ec2_id};
use ec2bridge::mapping::Executor;
use mapping_support::{all, one, req, sim_env, sim_principal};

const UBUNTU: &str = "e8e3401a-f3f0-4cec-8671-7b6085bf6e19";

async fn run(ex: &Executor, who: &Principal, zone: &str) -> String {
    let ami = ec2_id(Kind::Image, UBUNTU);
    let xml = ex
        .execute(
            &req(
                "RunInstances",
                &[
                    ("ImageId", &ami),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("InstanceType", "m1.small"),
                    ("Placement.AvailabilityZone", zone),
                ],
            ),
            who,
        )
        .await
        .expect("RunInstances");
    one(&xml, "instanceId")
}

async fn wait_state(ex: &Executor, who: &Principal, id: &str, state: &str) {
    for _ in 0..500 {
        let xml = ex.execute(&req("DescribeInstances", &[("InstanceId.1", id)]), who).await.unwrap();
        let wrapped = format!("<r>{xml}</r>");
        let doc = roxmltree::Document::parse(&wrapped).unwrap();
        let name = doc
            .descendants()
            .find(|n| n.has_tag_name("instanceState"))
            .and_then(|n| n.children().find(|c| c.has_tag_name("name")))
            .and_then(|c| c.text())
            .unwrap_or("")
            .to_string();
        if name == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("instance {id} never reached {state}");
}

fn code(r: Result<String, ec2bridge::ec2::Ec2Error>) -> String {
    match r {
        Ok(x) => panic!("expected an error, got {x}"),
        Err(e) => e.code.to_string(),
    }
}

#[tokio::test]
async fn elastic_ips_against_the_simulator() {
    let (_sim, ex, who, _client) = sim_env().await;
    // Default zone of AllocateAddress is the first enabled zone (zone1).
    let vm = run(&ex, &who, "zone1").await;
    let vm2 = run(&ex, &who, "zone1").await;

    assert_eq!(
        code(ex.execute(&req("AllocateAddress", &[("Domain", "vpc"), ("DryRun", "true")]), &who).await),
        "DryRunOperation"
    );
    assert_eq!(
        code(ex.execute(&req("AllocateAddress", &[("Domain", "classic")]), &who).await),
        "InvalidParameterValue"
    );
    let (r, c_alloc) = ex.execute_counted(&req("AllocateAddress", &[("Domain", "vpc")]), &who).await;
    let a = r.unwrap();
    let ip = one(&a, "publicIp");
    let alloc = one(&a, "allocationId");
    assert_eq!(one(&a, "domain"), "vpc");
    assert!(alloc.starts_with("eipalloc-") && alloc.len() == 26, "{alloc}");
    let b = ex.execute(&req("AllocateAddress", &[]), &who).await.unwrap();
    assert_eq!(one(&b, "domain"), "standard");
    let ip2 = one(&b, "publicIp");
    assert_ne!(ip, ip2);

    let (r, c_desc) = ex.execute_counted(&req("DescribeAddresses", &[]), &who).await;
    let d = r.unwrap();
    assert_eq!(all(&d, "publicIp").len(), 2, "{d}");
    let d = ex.execute(&req("DescribeAddresses", &[("PublicIp.1", &ip)]), &who).await.unwrap();
    assert_eq!(all(&d, "allocationId"), vec![alloc.clone()]);
    let d = ex.execute(&req("DescribeAddresses", &[("AllocationId.1", &alloc)]), &who).await.unwrap();
    assert_eq!(all(&d, "publicIp"), vec![ip.clone()]);
    assert_eq!(
        code(ex.execute(&req("DescribeAddresses", &[("PublicIp.1", "203.0.113.250")]), &who).await),
        "InvalidAddress.NotFound"
    );
    assert_eq!(
        code(ex.execute(&req("DescribeAddresses", &[("AllocationId.1", "eipalloc-0123456789abcdef0")]), &who).await),
        "InvalidAllocationID.NotFound"
    );
    assert_eq!(
        code(ex.execute(&req("DescribeAddresses", &[("AllocationId.1", "eip-1")]), &who).await),
        "InvalidAllocationID.Malformed"
    );
    assert_eq!(code(ex.execute(&req("DescribeAddresses", &[("MaxResults", "5")]), &who).await), "UnknownParameter");

    // Associate by allocation id.
    wait_state(&ex, &who, &vm, "running").await;
    let (r, c_assoc) =
        ex.execute_counted(&req("AssociateAddress", &[("AllocationId", &alloc), ("InstanceId", &vm)]), &who).await;
    let r = r.unwrap();
    assert_eq!(one(&r, "return"), "true");
    let assoc = one(&r, "associationId");
    assert!(assoc.starts_with("eipassoc-"), "{assoc}");
    let d = ex
        .execute(&req("DescribeAddresses", &[("Filter.1.Name", "instance-id"), ("Filter.1.Value.1", &vm)]), &who)
        .await
        .unwrap();
    assert_eq!(all(&d, "publicIp"), vec![ip.clone()]);
    assert_eq!(one(&d, "associationId"), assoc);
    assert!(!one(&d, "privateIpAddress").is_empty());
    let d = ex
        .execute(
            &req("DescribeAddresses", &[("Filter.1.Name", "association-id"), ("Filter.1.Value.1", "eipassoc-*")]),
            &who,
        )
        .await
        .unwrap();
    assert_eq!(all(&d, "publicIp"), vec![ip.clone()]);
    // The instance shows the address.
    let i = ex.execute(&req("DescribeInstances", &[("InstanceId.1", &vm)]), &who).await.unwrap();
    assert_eq!(one(&i, "ipAddress"), ip);
    // Same association again: nothing to do.
    let again = ex.execute(&req("AssociateAddress", &[("PublicIp", &ip), ("InstanceId", &vm)]), &who).await.unwrap();
    assert_eq!(one(&again, "associationId"), assoc);
    // The address is in use by vm: moving it needs AllowReassociation.
    wait_state(&ex, &who, &vm2, "running").await;
    assert_eq!(
        code(ex.execute(&req("AssociateAddress", &[("PublicIp", &ip), ("InstanceId", &vm2)]), &who).await),
        "InvalidIPAddress.InUse"
    );
    let moved = ex
        .execute(
            &req("AssociateAddress", &[("PublicIp", &ip), ("InstanceId", &vm2), ("AllowReassociation", "true")]),
            &who,
        )
        .await
        .unwrap();
    let assoc2 = one(&moved, "associationId");
    assert_ne!(assoc2, assoc, "a new association has a new id");
    // A second address on vm2 replaces the first (EC2: the old one is disassociated).
    ex.execute(&req("AssociateAddress", &[("PublicIp", &ip2), ("InstanceId", &vm2)]), &who).await.unwrap();
    let d = ex.execute(&req("DescribeAddresses", &[]), &who).await.unwrap();
    let wrapped = format!("<r>{d}</r>");
    let doc = roxmltree::Document::parse(&wrapped).unwrap();
    let on: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("item"))
        .map(|n| {
            let t = |k: &str| n.children().find(|c| c.has_tag_name(k)).and_then(|c| c.text()).unwrap_or("").to_string();
            (t("publicIp"), t("instanceId"))
        })
        .collect();
    assert!(on.contains(&(ip2.clone(), vm2.clone())), "{on:?}");
    assert!(on.contains(&(ip.clone(), String::new())), "{on:?}");

    // Disassociate by the old (stale) association id -> not found; by the current one -> done.
    assert_eq!(
        code(ex.execute(&req("DisassociateAddress", &[("AssociationId", &assoc)]), &who).await),
        "InvalidAssociationID.NotFound"
    );
    let d = ex.execute(&req("DescribeAddresses", &[("PublicIp.1", &ip2)]), &who).await.unwrap();
    let assoc3 = one(&d, "associationId");
    let (r, c_disassoc) = ex.execute_counted(&req("DisassociateAddress", &[("AssociationId", &assoc3)]), &who).await;
    assert_eq!(one(&r.unwrap(), "return"), "true");
    // An address that is not associated: nothing to do.
    let r = ex.execute(&req("DisassociateAddress", &[("PublicIp", &ip2)]), &who).await.unwrap();
    assert_eq!(one(&r, "return"), "true");
    assert_eq!(code(ex.execute(&req("DisassociateAddress", &[]), &who).await), "MissingParameter");
    assert_eq!(
        code(ex.execute(&req("DisassociateAddress", &[("PublicIp", &ip2), ("AssociationId", &assoc3)]), &who).await),
        "InvalidParameterCombination"
    );

    // Release: by allocation id, and by IP.
    assert_eq!(
        code(ex.execute(&req("ReleaseAddress", &[("AllocationId", &alloc), ("DryRun", "true")]), &who).await),
        "DryRunOperation"
    );
    let (r, c_release) = ex.execute_counted(&req("ReleaseAddress", &[("AllocationId", &alloc)]), &who).await;
    assert_eq!(one(&r.unwrap(), "return"), "true");
    ex.execute(&req("ReleaseAddress", &[("PublicIp", &ip2)]), &who).await.unwrap();
    let d = ex.execute(&req("DescribeAddresses", &[]), &who).await.unwrap();
    assert!(all(&d, "publicIp").is_empty(), "{d}");
    assert_eq!(code(ex.execute(&req("ReleaseAddress", &[("PublicIp", &ip2)]), &who).await), "InvalidAddress.NotFound");
    assert_eq!(
        code(ex.execute(&req("ReleaseAddress", &[("AllocationId", &alloc)]), &who).await),
        "InvalidAllocationID.NotFound"
    );
    eprintln!(
        "backend calls: AllocateAddress={c_alloc} DescribeAddresses={c_desc} AssociateAddress={c_assoc} DisassociateAddress={c_disassoc} ReleaseAddress={c_release}"
    );
    assert_eq!(c_desc, 1);
    // Zones are cached (RunInstances used them): listVPCs (Domain=vpc looks for a VPC to
    // allocate in; this account has none), associateIpAddress + its job.
    assert_eq!(c_alloc, 3);
    assert_eq!(c_assoc, 3, "address lookup, the caller's addresses, enableStaticNat");
    assert_eq!(c_disassoc, 3, "address lookup, disableStaticNat + its job");
    assert_eq!(c_release, 3, "address lookup, disassociateIpAddress + its job");
}

#[tokio::test]
async fn addresses_of_other_accounts_are_not_found() {
    let (sim, ex, who, _client) = sim_env().await;
    let a = ex.execute(&req("AllocateAddress", &[]), &who).await.unwrap();
    let ip = one(&a, "publicIp");
    let alloc = one(&a, "allocationId");
    let bob = sim_principal(&sim, "bob");
    assert_eq!(code(ex.execute(&req("ReleaseAddress", &[("PublicIp", &ip)]), &bob).await), "InvalidAddress.NotFound");
    assert_eq!(
        code(ex.execute(&req("ReleaseAddress", &[("AllocationId", &alloc)]), &bob).await),
        "InvalidAllocationID.NotFound"
    );
    let d = ex.execute(&req("DescribeAddresses", &[]), &bob).await.unwrap();
    assert!(!all(&d, "publicIp").contains(&ip));
}

/// (resourceId, key, value) rows of a DescribeTags answer.
fn tag_rows(xml: &str) -> Vec<(String, String, String)> {
    let wrapped = format!("<r>{xml}</r>");
    let doc = roxmltree::Document::parse(&wrapped).unwrap();
    let mut v: Vec<(String, String, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("item"))
        .map(|n| {
            let t = |k: &str| n.children().find(|c| c.has_tag_name(k)).and_then(|c| c.text()).unwrap_or("").to_string();
            (t("resourceId"), t("key"), t("value"))
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn tags_against_the_simulator() {
    let (_sim, ex, who, _client) = sim_env().await;
    let vm = run(&ex, &who, "zone1").await;
    let i = ex.execute(&req("DescribeInstances", &[("InstanceId.1", &vm)]), &who).await.unwrap();
    let sg = one(&i, "groupId");
    let eip = one(&ex.execute(&req("AllocateAddress", &[]), &who).await.unwrap(), "allocationId");
    let ami = ec2_id(Kind::Image, UBUNTU);

    // Three kinds in one call: one createTags per kind.
    let (r, c_create) = ex
        .execute_counted(
            &req(
                "CreateTags",
                &[
                    ("ResourceId.1", &vm),
                    ("ResourceId.2", &sg),
                    ("ResourceId.3", &eip),
                    ("Tag.1.Key", "Name"),
                    ("Tag.1.Value", "web"),
                    ("Tag.2.Key", "env"),
                    ("Tag.2.Value", "prod"),
                ],
            ),
            &who,
        )
        .await;
    assert_eq!(one(&r.unwrap(), "return"), "true");
    let (r, c_desc) = ex.execute_counted(&req("DescribeTags", &[]), &who).await;
    let d = r.unwrap();
    let rows = tag_rows(&d);
    for id in [&vm, &sg, &eip] {
        assert!(rows.contains(&(id.to_string(), "Name".into(), "web".into())), "{rows:?}");
        assert!(rows.contains(&(id.to_string(), "env".into(), "prod".into())), "{rows:?}");
    }
    assert_eq!(all(&d, "resourceType").iter().filter(|t| *t == "elastic-ip").count(), 2);
    // Filters: resource-type, resource-id, key, value (wildcards), tag:key.
    let f = |n: &'static str, v: &'static str| vec![("Filter.1.Name", n), ("Filter.1.Value.1", v)];
    let d = ex.execute(&req("DescribeTags", &f("resource-type", "instance")), &who).await.unwrap();
    assert_eq!(tag_rows(&d).len(), 2);
    assert!(all(&d, "resourceType").iter().all(|t| t == "instance"));
    let d = ex
        .execute(&req("DescribeTags", &[("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", &sg)]), &who)
        .await
        .unwrap();
    assert_eq!(
        tag_rows(&d),
        vec![(sg.clone(), "Name".into(), "web".into()), (sg.clone(), "env".into(), "prod".into())]
    );
    let d = ex.execute(&req("DescribeTags", &f("value", "pr*")), &who).await.unwrap();
    assert_eq!(tag_rows(&d).len(), 3);
    let d = ex.execute(&req("DescribeTags", &f("tag:env", "prod")), &who).await.unwrap();
    assert_eq!(tag_rows(&d).len(), 3);
    assert_eq!(code(ex.execute(&req("DescribeTags", &f("color", "x")), &who).await), "InvalidParameterValue");
    // Paging: 6 tags, 5 a page.
    let p1 = ex.execute(&req("DescribeTags", &[("MaxResults", "5")]), &who).await.unwrap();
    assert_eq!(tag_rows(&p1).len(), 5);
    let tok = one(&p1, "nextToken");
    let p2 = ex.execute(&req("DescribeTags", &[("MaxResults", "5"), ("NextToken", &tok)]), &who).await.unwrap();
    assert_eq!(tag_rows(&p2).len(), 1);
    assert!(all(&p2, "nextToken").is_empty());

    // Overwrite: an existing key gets the new value.
    ex.execute(&req("CreateTags", &[("ResourceId.1", &vm), ("Tag.1.Key", "Name"), ("Tag.1.Value", "db")]), &who)
        .await
        .unwrap();
    let d = ex
        .execute(&req("DescribeTags", &[("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", &vm)]), &who)
        .await
        .unwrap();
    assert_eq!(tag_rows(&d), vec![(vm.clone(), "Name".into(), "db".into()), (vm.clone(), "env".into(), "prod".into())]);
    // Tags show in DescribeInstances and DescribeAddresses.
    let i = ex.execute(&req("DescribeInstances", &[("InstanceId.1", &vm)]), &who).await.unwrap();
    assert!(all(&i, "value").contains(&"db".to_string()));
    let a = ex
        .execute(&req("DescribeAddresses", &[("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", "web")]), &who)
        .await
        .unwrap();
    assert_eq!(all(&a, "allocationId"), vec![eip.clone()]);

    // Errors: bad ids, unknown ids, empty values, reserved keys, DryRun.
    let bad = |id: &'static str| vec![("ResourceId.1", id), ("Tag.1.Key", "k"), ("Tag.1.Value", "v")];
    assert_eq!(code(ex.execute(&req("CreateTags", &bad("foo-123")), &who).await), "InvalidID");
    assert_eq!(
        code(ex.execute(&req("CreateTags", &bad("i-0123456789abcdef0")), &who).await),
        "InvalidInstanceID.NotFound"
    );
    assert_eq!(code(ex.execute(&req("CreateTags", &bad("sg-0123456789abcdef0")), &who).await), "InvalidGroup.NotFound");
    assert_eq!(
        code(ex.execute(&req("CreateTags", &[("Tag.1.Key", "k"), ("Tag.1.Value", "v")]), &who).await),
        "MissingParameter"
    );
    assert_eq!(
        code(ex.execute(&req("CreateTags", &[("ResourceId.1", &vm), ("Tag.1.Key", "k")]), &who).await),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            ex.execute(
                &req("CreateTags", &[("ResourceId.1", &vm), ("Tag.1.Key", "aws:x"), ("Tag.1.Value", "v")]),
                &who
            )
            .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            ex.execute(
                &req(
                    "CreateTags",
                    &[("ResourceId.1", &vm), ("Tag.1.Key", "k"), ("Tag.1.Value", "v"), ("DryRun", "true")]
                ),
                &who
            )
            .await
        ),
        "DryRunOperation"
    );
    // The public image is not alice's: CloudStack would refuse, the gateway keeps alice's tags on
    // it (docs/gateway-state.md). With fifty there, a request adding one more fails in that part
    // after CloudStack tagged the instance: the instance's part is undone.
    let keys: Vec<String> = (0..50).map(|i| format!("k{i:02}")).collect();
    let mut p: Vec<(String, String)> = vec![("ResourceId.1".into(), ami.clone())];
    for (i, k) in keys.iter().enumerate() {
        p.push((format!("Tag.{}.Key", i + 1), k.clone()));
        p.push((format!("Tag.{}.Value", i + 1), "v".into()));
    }
    let pr: Vec<(&str, &str)> = p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    ex.execute(&req("CreateTags", &pr), &who).await.unwrap();
    let before = tag_rows(&ex.execute(&req("DescribeTags", &[]), &who).await.unwrap());
    assert_eq!(before.iter().filter(|r| r.0 == ami).count(), 50);
    let e = ex
        .execute(
            &req(
                "CreateTags",
                &[("ResourceId.1", &vm), ("ResourceId.2", &ami), ("Tag.1.Key", "Name"), ("Tag.1.Value", "x")],
            ),
            &who,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "TagLimitExceeded", "{e:?}");
    let after = tag_rows(&ex.execute(&req("DescribeTags", &[]), &who).await.unwrap());
    assert_eq!(before, after, "nothing is left half-done");
    ex.execute(&req("DeleteTags", &[("ResourceId.1", &ami)]), &who).await.unwrap();
    let rows = tag_rows(&ex.execute(&req("DescribeTags", &[]), &who).await.unwrap());
    assert!(rows.iter().all(|r| r.0 != ami), "{rows:?}");

    // DeleteTags: key+value that does not match -> nothing; key only; all of a resource.
    ex.execute(&req("DeleteTags", &[("ResourceId.1", &vm), ("Tag.1.Key", "Name"), ("Tag.1.Value", "nope")]), &who)
        .await
        .unwrap();
    let (r, c_delete) = ex
        .execute_counted(
            &req("DeleteTags", &[("ResourceId.1", &vm), ("ResourceId.2", &sg), ("Tag.1.Key", "Name")]),
            &who,
        )
        .await;
    r.unwrap();
    let rows = tag_rows(&ex.execute(&req("DescribeTags", &f("key", "Name")), &who).await.unwrap());
    assert_eq!(rows, vec![(eip.clone(), "Name".into(), "web".into())]);
    ex.execute(&req("DeleteTags", &[("ResourceId.1", &eip)]), &who).await.unwrap();
    let rows = tag_rows(&ex.execute(&req("DescribeTags", &[]), &who).await.unwrap());
    assert_eq!(rows, vec![(vm.clone(), "env".into(), "prod".into()), (sg.clone(), "env".into(), "prod".into())]);
    // Deleting what is not there is no error.
    ex.execute(&req("DeleteTags", &[("ResourceId.1", &eip), ("Tag.1.Key", "Name")]), &who).await.unwrap();
    eprintln!("backend calls: CreateTags(3 kinds)={c_create} DescribeTags={c_desc} DeleteTags(2 kinds)={c_delete}");
    assert_eq!(c_desc, 1);
}

#[tokio::test]
async fn instance_types_status_console_against_the_simulator() {
    let (_sim, ex, who, _client) = sim_env().await;
    let (r, c_types) = ex.execute_counted(&req("DescribeInstanceTypes", &[]), &who).await;
    let t = r.unwrap();
    let names = all(&t, "instanceType");
    assert!(names.contains(&"m1.small".to_string()) && names.contains(&"t2.micro".to_string()), "{names:?}");
    let t = ex.execute(&req("DescribeInstanceTypes", &[("InstanceType.1", "t2.medium")]), &who).await.unwrap();
    assert_eq!(all(&t, "instanceType"), vec!["t2.medium"]);
    assert_eq!(one(&t, "defaultVCpus"), "2");
    assert!(!one(&t, "sizeInMiB").is_empty());
    assert!(all(&t, "item").len() >= 4, "string lists render as <item>text</item>: {t}");
    assert!(t.contains("<supportedArchitectures><item>x86_64</item></supportedArchitectures>"), "{t}");
    let t = ex
        .execute(
            &req("DescribeInstanceTypes", &[("Filter.1.Name", "vcpu-info.default-vcpus"), ("Filter.1.Value.1", "2")]),
            &who,
        )
        .await
        .unwrap();
    let two = all(&t, "instanceType");
    assert!(two.contains(&"t2.medium".to_string()) && !two.contains(&"t2.micro".to_string()), "{two:?}");
    assert_eq!(
        code(ex.execute(&req("DescribeInstanceTypes", &[("InstanceType.1", "x9.huge")]), &who).await),
        "InvalidInstanceType"
    );
    let p1 = ex.execute(&req("DescribeInstanceTypes", &[("MaxResults", "5")]), &who).await.unwrap();
    assert_eq!(all(&p1, "instanceType").len(), 5);
    assert!(!one(&p1, "nextToken").is_empty());

    // Status: only running instances unless IncludeAllInstances.
    let vm = run(&ex, &who, "zone1").await;
    wait_state(&ex, &who, &vm, "running").await;
    let (r, c_status) = ex.execute_counted(&req("DescribeInstanceStatus", &[("InstanceId.1", &vm)]), &who).await;
    let st = r.unwrap();
    assert_eq!(one(&st, "instanceId"), vm);
    assert_eq!(all(&st, "status"), vec!["ok", "passed", "ok", "passed"], "{st}");
    let st = ex
        .execute(
            &req("DescribeInstanceStatus", &[("Filter.1.Name", "instance-status.status"), ("Filter.1.Value.1", "ok")]),
            &who,
        )
        .await
        .unwrap();
    assert!(all(&st, "instanceId").contains(&vm));
    ex.execute(&req("StopInstances", &[("InstanceId.1", &vm)]), &who).await.unwrap();
    wait_state(&ex, &who, &vm, "stopped").await;
    let st = ex.execute(&req("DescribeInstanceStatus", &[("InstanceId.1", &vm)]), &who).await.unwrap();
    assert!(all(&st, "instanceId").is_empty(), "{st}");
    let st = ex
        .execute(&req("DescribeInstanceStatus", &[("InstanceId.1", &vm), ("IncludeAllInstances", "true")]), &who)
        .await
        .unwrap();
    assert_eq!(all(&st, "name")[0], "stopped");
    assert_eq!(all(&st, "status")[0], "not-applicable");
    assert_eq!(
        code(ex.execute(&req("DescribeInstanceStatus", &[("InstanceId.1", "i-0123456789abcdef0")]), &who).await),
        "InvalidInstanceID.NotFound"
    );

    // Console output: EC2's shape, base64 text saying there is none.
    let c = ex.execute(&req("GetConsoleOutput", &[("InstanceId", &vm)]), &who).await.unwrap();
    assert_eq!(one(&c, "instanceId"), vm);
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.decode(one(&c, "output")).unwrap();
    assert!(String::from_utf8(text).unwrap().contains("no console log"));
    assert_eq!(code(ex.execute(&req("GetConsoleOutput", &[]), &who).await), "MissingParameter");
    eprintln!("backend calls: DescribeInstanceTypes={c_types} DescribeInstanceStatus(id)={c_status}");
    assert_eq!(c_status, 1);
}

#[tokio::test]
async fn instance_attributes_against_the_simulator() {
    let (_sim, ex, who, _client) = sim_env().await;
    let ami = ec2_id(Kind::Image, UBUNTU);
    let r = ex
        .execute(
            &req(
                "RunInstances",
                &[
                    ("ImageId", &ami),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("InstanceType", "m1.small"),
                    ("UserData", "aGVsbG8="),
                ],
            ),
            &who,
        )
        .await
        .unwrap();
    let vm = one(&r, "instanceId");
    wait_state(&ex, &who, &vm, "running").await;
    let attr = |a: &'static str| req("DescribeInstanceAttribute", &[("InstanceId", vm.as_str()), ("Attribute", a)]);
    let (r, c_attr) = ex.execute_counted(&attr("instanceType"), &who).await;
    let x = r.unwrap();
    assert_eq!(one(&x, "instanceId"), vm);
    assert!(x.contains("<instanceType><value>m1.small</value></instanceType>"), "{x}");
    let x = ex.execute(&attr("userData"), &who).await.unwrap();
    assert!(x.contains("<userData><value>aGVsbG8=</value></userData>"), "{x}");
    let x = ex.execute(&attr("disableApiTermination"), &who).await.unwrap();
    assert!(x.contains("<disableApiTermination><value>false</value></disableApiTermination>"), "{x}");
    let x = ex.execute(&attr("instanceInitiatedShutdownBehavior"), &who).await.unwrap();
    assert_eq!(one(&x, "value"), "stop");
    let x = ex.execute(&attr("rootDeviceName"), &who).await.unwrap();
    assert_eq!(one(&x, "value"), "/dev/sda1");
    let x = ex.execute(&attr("kernel"), &who).await.unwrap();
    assert!(x.contains("<kernel></kernel>"), "{x}");
    let x = ex.execute(&attr("groupSet"), &who).await.unwrap();
    assert!(one(&x, "groupId").starts_with("sg-"), "{x}");
    let x = ex.execute(&attr("blockDeviceMapping"), &who).await.unwrap();
    assert_eq!(one(&x, "deviceName"), "/dev/sda1");
    assert!(one(&x, "volumeId").starts_with("vol-"));
    assert_eq!(one(&x, "deleteOnTermination"), "true");
    assert_eq!(code(ex.execute(&attr("color"), &who).await), "InvalidParameterValue");

    // Modify needs a stopped instance.
    let m = |k: &'static str, v: &'static str| req("ModifyInstanceAttribute", &[("InstanceId", vm.as_str()), (k, v)]);
    assert_eq!(code(ex.execute(&m("InstanceType.Value", "m1.large"), &who).await), "IncorrectInstanceState");
    assert_eq!(code(ex.execute(&m("InstanceType.Value", "x9.huge"), &who).await), "InvalidParameterValue");
    assert_eq!(code(ex.execute(&m("Kernel.Value", "aki-12345678"), &who).await), "UnsupportedOperation");
    assert_eq!(code(ex.execute(&m("EbsOptimized.Value", "true"), &who).await), "UnsupportedOperation");
    // Asking for what it already is: fine, nothing called.
    let (r, c_noop) = ex.execute_counted(&m("EbsOptimized.Value", "false"), &who).await;
    assert_eq!(one(&r.unwrap(), "return"), "true");
    assert_eq!(c_noop, 0);
    // Termination protection is kept by the gateway: no CloudStack call either way.
    let (r, c_prot) = ex.execute_counted(&m("DisableApiTermination.Value", "true"), &who).await;
    assert_eq!(one(&r.unwrap(), "return"), "true");
    assert_eq!(c_prot, 0);
    let x = ex.execute(&attr("disableApiTermination"), &who).await.unwrap();
    assert!(x.contains("<disableApiTermination><value>true</value></disableApiTermination>"), "{x}");
    let t = req("TerminateInstances", &[("InstanceId.1", vm.as_str())]);
    assert_eq!(code(ex.execute(&t, &who).await), "OperationNotPermitted");
    ex.execute(&m("DisableApiTermination.Value", "false"), &who).await.unwrap();
    assert_eq!(
        code(ex.execute(&req("ModifyInstanceAttribute", &[("InstanceId", &vm)]), &who).await),
        "MissingParameter"
    );
    ex.execute(&req("StopInstances", &[("InstanceId.1", &vm)]), &who).await.unwrap();
    wait_state(&ex, &who, &vm, "stopped").await;
    assert_eq!(
        code(
            ex.execute(
                &req(
                    "ModifyInstanceAttribute",
                    &[("InstanceId", &vm), ("InstanceType.Value", "m1.large"), ("DryRun", "true")]
                ),
                &who
            )
            .await
        ),
        "DryRunOperation"
    );
    let (r, c_modify) = ex.execute_counted(&m("InstanceType.Value", "m1.large"), &who).await;
    r.unwrap();
    let x = ex.execute(&attr("instanceType"), &who).await.unwrap();
    assert_eq!(one(&x, "value"), "m1.large");
    // Attribute/Value form, and user data.
    ex.execute(
        &req("ModifyInstanceAttribute", &[("InstanceId", &vm), ("Attribute", "instanceType"), ("Value", "t2.micro")]),
        &who,
    )
    .await
    .unwrap();
    assert_eq!(one(&ex.execute(&attr("instanceType"), &who).await.unwrap(), "value"), "t2.micro");
    ex.execute(&m("UserData.Value", "d29ybGQ="), &who).await.unwrap();
    assert_eq!(one(&ex.execute(&attr("userData"), &who).await.unwrap(), "value"), "d29ybGQ=");
    assert_eq!(code(ex.execute(&m("UserData.Value", "!!not base64"), &who).await), "InvalidParameterValue");

    // Reset: kernel/ramdisk/sourceDestCheck are already at their defaults; others are refused.
    let reset = |a: &'static str| req("ResetInstanceAttribute", &[("InstanceId", vm.as_str()), ("Attribute", a)]);
    let (r, c_reset) = ex.execute_counted(&reset("sourceDestCheck"), &who).await;
    assert_eq!(one(&r.unwrap(), "return"), "true");
    assert_eq!(c_reset, 1, "one listVirtualMachines checks the instance, nothing else is called");
    let (r, c_refused) = ex.execute_counted(&reset("userData"), &who).await;
    assert_eq!(code(r), "InvalidParameterValue");
    assert_eq!(c_refused, 0);
    eprintln!(
        "backend calls: DescribeInstanceAttribute(instanceType)={c_attr} ModifyInstanceAttribute(instanceType)={c_modify}"
    );
    assert_eq!(c_attr, 1);
}

/// Issue 14 item 14: single-object answers and tag changes for another tenant's id are NotFound,
/// exactly as for an id that does not exist (the shared id cache knows every id, so resolving it
/// used to succeed and the caller's empty list became a 200).
#[tokio::test]
async fn another_tenants_instance_is_not_found_for_single_object_answers() {
    let (sim, ex, alice, _client) = sim_env().await;
    let id = run(&ex, &alice, "zone1").await;
    ex.execute(&req("CreateTags", &[("ResourceId.1", &id), ("Tag.1.Key", "owner"), ("Tag.1.Value", "alice")]), &alice)
        .await
        .unwrap();
    let bob = sim_principal(&sim, "bob");
    let nobody = ec2_id(Kind::Instance, "00000000-0000-4000-8000-00000000dead");
    for target in [&id, &nobody] {
        let e = ex.execute(&req("GetConsoleOutput", &[("InstanceId", target)]), &bob).await.unwrap_err();
        assert_eq!(e.code, "InvalidInstanceID.NotFound", "{target}: {e}");
        assert!(e.message.contains(target.as_str()), "{e}");
        // ResetInstanceAttribute (data: check.by = "id") lists the caller's instance; it used to
        // answer true for any id the shared cache knew.
        let r = req("ResetInstanceAttribute", &[("InstanceId", target), ("Attribute", "sourceDestCheck")]);
        let e = ex.execute(&r, &bob).await.unwrap_err();
        assert_eq!(e.code, "InvalidInstanceID.NotFound", "ResetInstanceAttribute {target}: {e}");
        for action in ["DeleteTags", "CreateTags"] {
            let e = ex
                .execute(
                    &req(action, &[("ResourceId.1", target), ("Tag.1.Key", "owner"), ("Tag.1.Value", "bob")]),
                    &bob,
                )
                .await
                .unwrap_err();
            assert_eq!(e.code, "InvalidInstanceID.NotFound", "{action} {target}: {e}");
        }
    }
    // Nothing changed for alice; her own calls still work.
    let t = ex.execute(&req("DescribeTags", &[]), &alice).await.unwrap();
    assert_eq!(tag_rows(&t), vec![(id.clone(), "owner".to_string(), "alice".to_string())]);
    ex.execute(&req("GetConsoleOutput", &[("InstanceId", &id)]), &alice).await.unwrap();
    ex.execute(&req("DeleteTags", &[("ResourceId.1", &id), ("Tag.1.Key", "owner")]), &alice).await.unwrap();
}
