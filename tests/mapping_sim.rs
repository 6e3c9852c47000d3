//! End to end: the executor over the real CloudStack client against the in-process simulator
//! (fast mode), the instance lifecycle as EC2 clients drive it.

mod mapping_support;

use std::time::Duration;

use ec2bridge::auth::Principal;
use ec2bridge::cloudstack::{ClientOptions, CsClient};
use ec2bridge::ids::{Kind, ec2_id};
use ec2bridge::mapping::Executor;
use mapping_support::{all, one, req, sim_env};

const UBUNTU: &str = "e8e3401a-f3f0-4cec-8671-7b6085bf6e19";

/// Poll DescribeInstances until every given instance is in `state` (as a waiter does).
async fn wait_state(ex: &Executor, who: &Principal, ids: &[String], state: &str) -> String {
    let mut params: Vec<(String, String)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        params.push((format!("InstanceId.{}", i + 1), id.clone()));
    }
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for _ in 0..400 {
        let xml = ex.execute(&req("DescribeInstances", &p), who).await.expect("DescribeInstances");
        let names = all(&xml, "instanceState").len();
        let wrapped = format!("<r>{xml}</r>");
        let doc = roxmltree::Document::parse(&wrapped).unwrap();
        let states: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("instanceState"))
            .map(|n| n.children().find(|c| c.has_tag_name("name")).and_then(|c| c.text()).unwrap_or("").to_string())
            .collect();
        assert_eq!(names, ids.len());
        if states.iter().all(|s| s == state) {
            return xml;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("instances {ids:?} never reached {state}");
}

#[tokio::test]
async fn instance_lifecycle_against_the_simulator() {
    let (_sim, ex, who, client) = sim_env().await;
    let ami = ec2_id(Kind::Image, UBUNTU);

    let xml = ex.execute(&req("DescribeAvailabilityZones", &[]), &who).await.unwrap();
    // The default seed's zone3 is Advanced without security groups: the cloud supports VPC too.
    assert_eq!(all(&xml, "zoneName"), vec!["zone1", "zone2", "zone3"]);
    let xml = ex
        .execute(&req("DescribeAccountAttributes", &[("AttributeName.1", "supported-platforms")]), &who)
        .await
        .unwrap();
    assert_eq!(all(&xml, "attributeValue"), vec!["EC2", "VPC"]);
    let xml = ex.execute(&req("DescribeImages", &[]), &who).await.unwrap();
    assert!(all(&xml, "imageId").contains(&ami), "{xml}");
    let ids = all(&xml, "imageId");
    let mut dedup = ids.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(ids.len(), dedup.len(), "one row per template");
    let xml = ex.execute(&req("DescribeImages", &[("ImageId.1", &ami)]), &who).await.unwrap();
    assert_eq!(one(&xml, "imageState"), "available");
    assert_eq!(one(&xml, "name"), "Ubuntu 22.04");

    // RunInstances: answered at once, pending.
    let calls_before = client.calls();
    let (r, calls) = ex
        .execute_counted(
            &req(
                "RunInstances",
                &[
                    ("ImageId", &ami),
                    ("MinCount", "2"),
                    ("MaxCount", "2"),
                    ("InstanceType", "t2.micro"),
                    ("Placement.AvailabilityZone", "zone2"),
                    ("UserData", "aGVsbG8="),
                    ("TagSpecification.1.ResourceType", "instance"),
                    ("TagSpecification.1.Tag.1.Key", "Name"),
                    ("TagSpecification.1.Tag.1.Value", "web"),
                    ("ClientToken", "lifecycle-1"),
                ],
            ),
            &who,
        )
        .await;
    let run = r.unwrap();
    let http_calls = client.calls() - calls_before;
    eprintln!("RunInstances x2 with tags: {calls} executor calls, {http_calls} HTTP requests");
    let iids = all(&run, "instanceId");
    assert_eq!(iids.len(), 2);
    assert_eq!(all(&run, "name").iter().filter(|n| *n == "pending").count(), 2);
    let rid = one(&run, "reservationId");

    // Same ClientToken: the same reservation, nothing new deployed.
    let again = ex
        .execute(
            &req(
                "RunInstances",
                &[
                    ("ImageId", &ami),
                    ("MinCount", "2"),
                    ("MaxCount", "2"),
                    ("InstanceType", "t2.micro"),
                    ("Placement.AvailabilityZone", "zone2"),
                    ("UserData", "aGVsbG8="),
                    ("TagSpecification.1.ResourceType", "instance"),
                    ("TagSpecification.1.Tag.1.Key", "Name"),
                    ("TagSpecification.1.Tag.1.Value", "web"),
                    ("ClientToken", "lifecycle-1"),
                ],
            ),
            &who,
        )
        .await
        .unwrap();
    assert_eq!(again, run);

    let xml = wait_state(&ex, &who, &iids, "running").await;
    assert_eq!(all(&xml, "reservationId"), vec![rid.clone()], "one reservation for the batch");
    assert_eq!(all(&xml, "instanceType"), vec!["t2.micro"; 2]);
    assert_eq!(all(&xml, "availabilityZone"), vec!["zone2"; 2]);
    assert_eq!(all(&xml, "value"), vec!["web"; 2]);
    assert_eq!(all(&xml, "privateIpAddress").len(), 2);
    assert!(all(&xml, "launchTime")[0].ends_with(".000Z"));

    // Filters against real data.
    let xml = ex
        .execute(
            &req(
                "DescribeInstances",
                &[
                    ("Filter.1.Name", "tag:Name"),
                    ("Filter.1.Value.1", "w*"),
                    ("Filter.2.Name", "availability-zone"),
                    ("Filter.2.Value.1", "zone2"),
                ],
            ),
            &who,
        )
        .await
        .unwrap();
    assert_eq!(all(&xml, "instanceId").len(), 2);

    // Stop one: stopping now, stopped later.
    let xml = ex.execute(&req("StopInstances", &[("InstanceId.1", &iids[0])]), &who).await.unwrap();
    assert_eq!(all(&xml, "name"), vec!["stopping", "running"]);
    wait_state(&ex, &who, &iids[..1], "stopped").await;
    let xml = ex.execute(&req("StartInstances", &[("InstanceId.1", &iids[0])]), &who).await.unwrap();
    assert_eq!(all(&xml, "name"), vec!["pending", "stopped"]);
    wait_state(&ex, &who, &iids[..1], "running").await;
    let xml = ex.execute(&req("RebootInstances", &[("InstanceId.1", &iids[1])]), &who).await.unwrap();
    assert_eq!(xml, "<return>true</return>");

    // Terminate: shutting-down at once, then terminated (still listed by id).
    let xml = ex
        .execute(&req("TerminateInstances", &[("InstanceId.1", &iids[0]), ("InstanceId.2", &iids[1])]), &who)
        .await
        .unwrap();
    assert_eq!(all(&xml, "name"), vec!["shutting-down", "running", "shutting-down", "running"]);
    wait_state(&ex, &who, &iids, "terminated").await;

    // Errors through the real client.
    let e = ex.execute(&req("DescribeInstances", &[("InstanceId.1", "i-0123456789abcdef0")]), &who).await.unwrap_err();
    assert_eq!(e.code, "InvalidInstanceID.NotFound");
    let e = ex
        .execute(
            &req("RunInstances", &[("ImageId", "ami-0123456789abcdef0"), ("MinCount", "1"), ("MaxCount", "1")]),
            &who,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidAMIID.NotFound");
    let e = ex
        .execute(
            &req(
                "RunInstances",
                &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("KeyName", "no-such-key")],
            ),
            &who,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidKeyPair.NotFound");
}

#[tokio::test]
async fn backend_calls_per_action() {
    let (_sim, ex, who, _client) = sim_env().await;
    let ami = ec2_id(Kind::Image, UBUNTU);
    // Warm the metadata cache as a running gateway would have it.
    ex.execute(&req("DescribeImages", &[]), &who).await.unwrap();
    ex.execute(&req("DescribeAvailabilityZones", &[]), &who).await.unwrap();
    let dry = [
        ("ImageId", ami.as_str()),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("InstanceType", "m1.small"),
        ("DryRun", "true"),
    ];
    assert_eq!(ex.execute(&req("RunInstances", &dry), &who).await.unwrap_err().code, "DryRunOperation");
    let (r, c_run) = ex
        .execute_counted(
            &req(
                "RunInstances",
                &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("InstanceType", "m1.small")],
            ),
            &who,
        )
        .await;
    let r = r.unwrap();
    let id = one(&r, "instanceId");
    // The default group, by id as well as name (reservation and instance groupSet).
    let gids = all(&r, "groupId");
    assert!(gids.len() == 2 && gids.iter().all(|g| g.starts_with("sg-")), "{r}");
    assert_eq!(all(&r, "groupName"), vec!["default", "default"]);
    let (_, c_run3) = ex
        .execute_counted(
            &req(
                "RunInstances",
                &[("ImageId", &ami), ("MinCount", "3"), ("MaxCount", "3"), ("InstanceType", "m1.small")],
            ),
            &who,
        )
        .await;
    let (_, c_desc) = ex.execute_counted(&req("DescribeInstances", &[]), &who).await;
    let (_, c_desc_id) = ex.execute_counted(&req("DescribeInstances", &[("InstanceId.1", &id)]), &who).await;
    let (_, c_stop) = ex.execute_counted(&req("StopInstances", &[("InstanceId.1", &id)]), &who).await;
    let (_, c_zones) = ex.execute_counted(&req("DescribeAvailabilityZones", &[]), &who).await;
    let (_, c_images) = ex.execute_counted(&req("DescribeImages", &[]), &who).await;
    eprintln!(
        "backend calls: RunInstances(1)={c_run} RunInstances(3)={c_run3} DescribeInstances={c_desc} DescribeInstances(id)={c_desc_id} StopInstances={c_stop} DescribeAvailabilityZones={c_zones} DescribeImages={c_images}"
    );
    // The first RunInstances also lists the account's security groups (group ids for the answer);
    // later ones reuse that list.
    assert_eq!(c_run, 2);
    assert_eq!(c_run3, 3);
    // listVirtualMachines + one listVolumes for every instance's blockDeviceMapping (CloudStack
    // lists no volumes with the VMs).
    assert_eq!(c_desc, 2);
    assert_eq!(c_desc_id, 2);
    assert_eq!(c_stop, 2);
    assert_eq!(c_zones, 0);
    assert_eq!(c_images, 3);
    let stats = ex.stats();
    let run = stats.iter().find(|s| s.action == "RunInstances").unwrap();
    // The DryRun above counts too: it resolved the instance type (one call).
    assert_eq!((run.requests, run.backend_calls), (3, 6));
}

#[tokio::test]
async fn min_count_rollback_against_the_simulator() {
    let (sim, ex, who, _client) = sim_env().await;
    let ami = ec2_id(Kind::Image, UBUNTU);
    // alice may run 20 VMs: asking for at least 21 cannot be met; nothing may be left behind.
    let (e, calls) = ex
        .execute_counted(&req("RunInstances", &[("ImageId", &ami), ("MinCount", "21"), ("MaxCount", "25")]), &who)
        .await;
    let e = e.unwrap_err();
    eprintln!("rollback: {calls} calls, {e:?}");
    assert_eq!(e.code, "InstanceLimitExceeded", "{e:?}");
    assert!(!e.message.contains("left behind"), "{e:?}");
    // The rollback runs after the answer (operations journal). CloudStack keeps destroyed VMs
    // hidden from their owner: soon none of alice's are visible.
    let mut xml = String::new();
    for _ in 0..300 {
        xml = ex
            .execute(
                &req(
                    "DescribeInstances",
                    &[
                        ("Filter.1.Name", "instance-state-name"),
                        ("Filter.1.Value.1", "pending"),
                        ("Filter.1.Value.2", "running"),
                    ],
                ),
                &who,
            )
            .await
            .unwrap();
        if all(&xml, "instanceId").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(all(&xml, "instanceId").is_empty(), "{xml}");
    // Within the limit, MaxCount above it: EC2 launches as many as it can.
    let xml = ex
        .execute(&req("RunInstances", &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "25")]), &who)
        .await
        .unwrap();
    assert_eq!(all(&xml, "instanceId").len(), 20);
    drop(sim);
}

/// The executor over a simulator started from the default seed plus `extra` (faults).
async fn seeded_env(extra: &str) -> (ec2bridge::sim::SimHandle, Executor, Principal, std::sync::Arc<CsClient>) {
    let opts = ec2bridge::sim::SimOptions {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        seed: None,
        fast: true,
        state_dir: None,
    };
    let seed = format!("{}\n{extra}", include_str!("../seeds/default.toml"));
    let sim = ec2bridge::sim::start_with_seed(opts, &seed).await.expect("simulator starts");
    let copts = ClientOptions { poll_initial: Duration::from_millis(5), ..Default::default() };
    let client = std::sync::Arc::new(CsClient::new(&sim.endpoint, copts).expect("client"));
    let ex = Executor::new(client.clone(), None).expect("table");
    let who = mapping_support::sim_principal(&sim, "alice");
    (sim, ex, who, client)
}

#[tokio::test]
async fn launches_share_the_deploy_watch_poll() {
    let (_sim, ex, who, client) = sim_env().await;
    let ami = ec2_id(Kind::Image, UBUNTU);
    let run =
        req("RunInstances", &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("InstanceType", "m1.small")]);
    // Steady state: metadata and the security group list cached, the first watch over.
    ex.execute(&run, &who).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = client.calls();
    let answers = ec2bridge::mapping::backend::join_all((0..8).map(|_| ex.execute(&run, &who)).collect()).await;
    let iids: Vec<String> = answers.into_iter().map(|a| one(&a.unwrap(), "instanceId")).collect();
    // The watches end within a few poll rounds (5 ms each here, the simulator's jobs are fast).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let watch_calls = client.calls() - before - 8;
    eprintln!("8 launches: 8 deploys + {watch_calls} calls after them");
    // One queryAsyncJobResult per deploy before: now a shared listing per round.
    assert!((1..8).contains(&watch_calls), "{watch_calls}");
    wait_state(&ex, &who, &iids, "running").await;
    // What the shared poll reads: listVirtualMachines ids=... details=min (state and pending job,
    // no NICs or offerings), as CloudStack's minimal VM view.
    let uuids: Vec<String> = {
        let p = [("listall".to_string(), "true".to_string())];
        let all_vms = client.list_all(&who.cloudstack, "listVirtualMachines", &p, "virtualmachine").await.unwrap();
        all_vms
            .iter()
            .filter_map(|v| v["id"].as_str())
            .filter(|u| iids.contains(&ec2_id(Kind::Instance, u)))
            .map(str::to_string)
            .collect()
    };
    let p = [("ids".to_string(), uuids.join(",")), ("details".to_string(), "min".to_string())];
    let min = client.list_all(&who.cloudstack, "listVirtualMachines", &p, "virtualmachine").await.unwrap();
    assert_eq!(min.len(), 8);
    for v in &min {
        assert_eq!(v["state"], "Running", "{v}");
        assert!(v.get("nic").is_none() && v.get("serviceofferingid").is_none() && v.get("jobid").is_none(), "{v}");
    }
}

#[tokio::test]
async fn a_failed_deploy_keeps_its_reason_through_the_shared_watch() {
    let (_sim, ex, who, _client) = seeded_env(
        "[[faults]]\ncommand = \"deployVirtualMachine\"\njob = \"fail\"\njob_error_code = 533\njob_error_text = \"no capacity\"\n",
    )
    .await;
    let ami = ec2_id(Kind::Image, UBUNTU);
    let xml = ex
        .execute(&req("RunInstances", &[("ImageId", &ami), ("MinCount", "2"), ("MaxCount", "2")]), &who)
        .await
        .unwrap();
    assert_eq!(all(&xml, "name").iter().filter(|n| *n == "pending").count(), 2, "{xml}");
    let iids = all(&xml, "instanceId");
    let mut xml = wait_state(&ex, &who, &iids, "terminated").await;
    // A VM in Error shows terminated at once (Server.InternalError); once the watch has asked the
    // deploy job, its tombstone says why: CloudStack's 533 is EC2's capacity error.
    let capacity = |xml: &str| all(xml, "code").iter().filter(|c| *c == "Server.InsufficientInstanceCapacity").count();
    for _ in 0..400 {
        if capacity(&xml) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        xml = wait_state(&ex, &who, &iids, "terminated").await;
    }
    assert_eq!(capacity(&xml), 2, "{xml}");
    assert!(!xml.contains("no capacity"), "{xml}");
}
