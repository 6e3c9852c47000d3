//! Volumes and snapshots end to end: the executor over the real CloudStack client against the
//! in-process simulator (fast mode), driven as EC2 clients and their waiters drive it.

mod mapping_support;

use std::time::Duration;

use ec2bridge::auth::Principal;
use ec2bridge::cloudstack::CsCredentials;
use ec2bridge::ids::{Kind, ec2_id};
use ec2bridge::mapping::Executor;
use mapping_support::{alice_number, all, children, one, req, sim_env};

const UBUNTU: &str = "e8e3401a-f3f0-4cec-8671-7b6085bf6e19";

async fn run(ex: &Executor, who: &Principal, action: &str, p: &[(&str, &str)]) -> String {
    ex.execute(&req(action, p), who).await.unwrap_or_else(|e| panic!("{action}: {} {}", e.code, e.message))
}

async fn fail(ex: &Executor, who: &Principal, action: &str, p: &[(&str, &str)]) -> (String, String) {
    let e = ex.execute(&req(action, p), who).await.expect_err(action);
    (e.code.to_string(), e.message)
}

/// Poll DescribeVolumes (as boto3's volume waiters do) until the volume has `status`.
async fn wait_volume(ex: &Executor, who: &Principal, vol: &str, status: &str) -> String {
    for _ in 0..400 {
        let xml = run(ex, who, "DescribeVolumes", &[("VolumeId.1", vol)]).await;
        if one(&xml, "status") == status {
            return xml;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("volume {vol} never became {status}");
}

async fn wait_snapshot(ex: &Executor, who: &Principal, snap: &str) -> String {
    for _ in 0..400 {
        let xml = run(ex, who, "DescribeSnapshots", &[("SnapshotId.1", snap)]).await;
        if one(&xml, "status") == "completed" {
            return xml;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("snapshot {snap} never completed");
}

async fn running_instance(ex: &Executor, who: &Principal, zone: &str) -> String {
    let ami = ec2_id(Kind::Image, UBUNTU);
    let xml = run(
        ex,
        who,
        "RunInstances",
        &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("Placement.AvailabilityZone", zone)],
    )
    .await;
    let iid = one(&xml, "instanceId");
    for _ in 0..400 {
        let xml = run(ex, who, "DescribeInstances", &[("InstanceId.1", &iid)]).await;
        if all(&xml, "name").contains(&"running".to_string()) {
            return iid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("instance never ran");
}

#[tokio::test]
async fn volume_and_snapshot_lifecycle() {
    let (_sim, ex, who, client) = sim_env().await;

    // CreateVolume answers at once, creating, with its tags.
    let create = [
        ("Size", "10"),
        ("AvailabilityZone", "zone1"),
        ("VolumeType", "gp2"),
        ("TagSpecification.1.ResourceType", "volume"),
        ("TagSpecification.1.Tag.1.Key", "Name"),
        ("TagSpecification.1.Tag.1.Value", "data"),
        ("ClientToken", "vol-token-1"),
    ];
    let xml = run(&ex, &who, "CreateVolume", &create).await;
    assert_eq!(one(&xml, "status"), "creating");
    assert_eq!(one(&xml, "size"), "10");
    assert_eq!(one(&xml, "availabilityZone"), "zone1");
    assert_eq!(one(&xml, "volumeType"), "standard");
    assert_eq!(all(&xml, "value"), vec!["data"]);
    assert!(one(&xml, "createTime").ends_with(".000Z"));
    let fields = children(&format!("<x>{xml}</x>"), "x");
    assert_eq!(
        fields[..7],
        ["volumeId", "size", "snapshotId", "availabilityZone", "status", "createTime", "volumeType"]
    );
    let vol = one(&xml, "volumeId");
    assert!(vol.starts_with("vol-") && vol.len() == 21, "{vol}");

    // ClientToken: the same answer and no second volume; other parameters -> mismatch.
    let again = run(&ex, &who, "CreateVolume", &create).await;
    assert_eq!(again, xml);
    let mut other = create.to_vec();
    other[0] = ("Size", "11");
    let (code, _) = fail(&ex, &who, "CreateVolume", &other).await;
    assert_eq!(code, "IdempotentParameterMismatch");

    let xml = wait_volume(&ex, &who, &vol, "available").await;
    assert_eq!(one(&xml, "size"), "10");
    assert_eq!(all(&xml, "key"), vec!["Name"]);
    assert_eq!(all(&xml, "attachmentSet"), vec![""]);
    assert_eq!(
        children(&xml, "item")[..8],
        ["volumeId", "size", "snapshotId", "availabilityZone", "status", "createTime", "attachmentSet", "tagSet"]
    );

    // A new volume is Allocated in CloudStack (not on storage, never written): its snapshot is
    // an empty disk the gateway keeps, completed at once, with no CloudStack command.
    let (r, calls) = ex.execute_counted(&req("CreateSnapshot", &[("VolumeId", &vol)]), &who).await;
    let xml = r.unwrap();
    assert_eq!((one(&xml, "status"), one(&xml, "volumeSize")), ("completed".into(), "10".into()));
    assert_eq!(calls, 1, "one listVolumes");
    let empty = one(&xml, "snapshotId");
    run(&ex, &who, "DeleteSnapshot", &[("SnapshotId", &empty)]).await;

    // Attach: attaching at once, then in-use / attached at the device asked for.
    let iid = running_instance(&ex, &who, "zone1").await;
    let xml = run(&ex, &who, "AttachVolume", &[("VolumeId", &vol), ("InstanceId", &iid), ("Device", "/dev/sdf")]).await;
    assert_eq!(children(&format!("<x>{xml}</x>"), "x"), ["volumeId", "instanceId", "device", "status", "attachTime"]);
    assert_eq!(one(&xml, "status"), "attaching");
    assert_eq!(one(&xml, "device"), "/dev/sdf");
    assert_eq!(one(&xml, "instanceId"), iid);
    let xml = wait_volume(&ex, &who, &vol, "in-use").await;
    let xml = if all(&xml, "status").contains(&"attached".to_string()) {
        xml
    } else {
        tokio::time::sleep(Duration::from_millis(100)).await;
        run(&ex, &who, "DescribeVolumes", &[("VolumeId.1", &vol)]).await
    };
    assert_eq!(all(&xml, "status"), vec!["in-use", "attached"]);
    assert_eq!(all(&xml, "device"), vec!["/dev/sdf"]);
    assert_eq!(all(&xml, "deleteOnTermination"), vec!["false"]);
    let (code, msg) = fail(&ex, &who, "DeleteVolume", &[("VolumeId", &vol)]).await;
    assert_eq!(code, "VolumeInUse");
    assert!(msg.contains(&iid), "{msg}");
    let (code, _) =
        fail(&ex, &who, "AttachVolume", &[("VolumeId", &vol), ("InstanceId", &iid), ("Device", "/dev/sdg")]).await;
    assert_eq!(code, "VolumeInUse");

    // Filters over attachments; the root volume of the instance is listed too.
    let xml =
        run(&ex, &who, "DescribeVolumes", &[("Filter.1.Name", "attachment.instance-id"), ("Filter.1.Value.1", &iid)])
            .await;
    let mut devices = all(&xml, "device");
    devices.sort();
    assert_eq!(devices, vec!["/dev/sda1", "/dev/sdf"]);
    let xml = run(
        &ex,
        &who,
        "DescribeVolumes",
        &[
            ("Filter.1.Name", "attachment.device"),
            ("Filter.1.Value.1", "/dev/sd?"),
            ("Filter.2.Name", "tag:Name"),
            ("Filter.2.Value.1", "da*"),
        ],
    )
    .await;
    assert_eq!(all(&xml, "volumeId"), vec![vol.clone(), vol.clone()]);
    let xml = run(
        &ex,
        &who,
        "DescribeVolumes",
        &[("Filter.1.Name", "attachment.delete-on-termination"), ("Filter.1.Value.1", "true")],
    )
    .await;
    assert!(!all(&xml, "volumeId").contains(&vol));

    // Snapshot of the attached (Ready) volume: pending, then completed 100%.
    let xml = run(
        &ex,
        &who,
        "CreateSnapshot",
        &[
            ("VolumeId", &vol),
            ("Description", "nightly backup"),
            ("TagSpecification.1.ResourceType", "snapshot"),
            ("TagSpecification.1.Tag.1.Key", "tier"),
            ("TagSpecification.1.Tag.1.Value", "gold"),
        ],
    )
    .await;
    assert_eq!(one(&xml, "status"), "pending");
    assert_eq!(one(&xml, "volumeSize"), "10");
    assert_eq!(one(&xml, "description"), "nightly backup");
    assert_eq!(one(&xml, "ownerId"), alice_number());
    let snap = one(&xml, "snapshotId");
    assert!(snap.starts_with("snap-"));
    let xml = wait_snapshot(&ex, &who, &snap).await;
    assert_eq!(one(&xml, "progress"), "100%");
    assert_eq!(one(&xml, "volumeId"), vol);
    assert_eq!(one(&xml, "volumeSize"), "10");
    assert_eq!(all(&xml, "value"), vec!["gold"]);
    let alice_num = alice_number();
    for (name, value) in [
        ("volume-id", vol.as_str()),
        ("description", "nightly*"),
        ("status", "completed"),
        ("tag:tier", "gold"),
        ("tag-key", "tier"),
        ("volume-size", "10"),
        ("owner-id", alice_num.as_str()),
        ("progress", "100%"),
    ] {
        let xml = run(&ex, &who, "DescribeSnapshots", &[("Filter.1.Name", name), ("Filter.1.Value.1", value)]).await;
        assert_eq!(all(&xml, "snapshotId"), vec![snap.clone()], "filter {name}");
    }
    let (r, calls) = ex.execute_counted(&req("DescribeSnapshots", &[("SnapshotId.1", &snap)]), &who).await;
    assert_eq!(all(&r.unwrap(), "snapshotId"), vec![snap.clone()]);
    assert_eq!(calls, 1, "one listSnapshots, sizes from virtualsize");
    let xml = run(&ex, &who, "DescribeSnapshots", &[("Owner.1", "self")]).await;
    assert_eq!(all(&xml, "snapshotId"), vec![snap.clone()]);
    let xml = run(&ex, &who, "DescribeSnapshots", &[("Owner.1", "amazon")]).await;
    assert_eq!(xml, "<snapshotSet/>");
    let xml =
        run(&ex, &who, "DescribeSnapshots", &[("Filter.1.Name", "status"), ("Filter.1.Value.1", "pending")]).await;
    assert_eq!(xml, "<snapshotSet/>");

    // Detach: wrong instance -> InvalidAttachment.NotFound; then detaching, then available.
    let other_iid = ec2_id(Kind::Instance, "00000000-0000-0000-0000-000000000000");
    let (code, _) = fail(&ex, &who, "DetachVolume", &[("VolumeId", &vol), ("InstanceId", &other_iid)]).await;
    assert_eq!(code, "InvalidInstanceID.NotFound");
    let (code, _) = fail(&ex, &who, "DetachVolume", &[("VolumeId", &vol), ("Device", "/dev/sdg")]).await;
    assert_eq!(code, "InvalidAttachment.NotFound");
    let xml = run(
        &ex,
        &who,
        "DetachVolume",
        &[("VolumeId", &vol), ("InstanceId", &iid), ("Device", "/dev/sdf"), ("Force", "true")],
    )
    .await;
    assert_eq!(one(&xml, "status"), "detaching");
    assert_eq!(one(&xml, "instanceId"), iid);
    wait_volume(&ex, &who, &vol, "available").await;
    let (code, msg) = fail(&ex, &who, "DetachVolume", &[("VolumeId", &vol)]).await;
    assert_eq!(code, "IncorrectState");
    assert!(msg.contains("'available'"), "{msg}");

    // A volume from the snapshot: its size, its snapshot id.
    let xml = run(&ex, &who, "CreateVolume", &[("SnapshotId", &snap), ("AvailabilityZone", "zone1")]).await;
    assert_eq!(one(&xml, "snapshotId"), snap);
    assert_eq!(one(&xml, "size"), "10");
    let vol2 = one(&xml, "volumeId");
    let xml = wait_volume(&ex, &who, &vol2, "available").await;
    assert_eq!(one(&xml, "snapshotId"), snap);
    let (code, _) =
        fail(&ex, &who, "CreateVolume", &[("SnapshotId", &snap), ("Size", "5"), ("AvailabilityZone", "zone1")]).await;
    assert_eq!(code, "InvalidParameterValue");

    // Many ids, one backend call; filters; paging.
    let before = client.calls();
    let (r, calls) =
        ex.execute_counted(&req("DescribeVolumes", &[("VolumeId.1", &vol), ("VolumeId.2", &vol2)]), &who).await;
    assert_eq!(all(&r.unwrap(), "volumeId"), vec![vol.clone(), vol2.clone()]);
    assert_eq!(calls, 1);
    eprintln!("DescribeVolumes with 2 ids: {calls} executor call(s), {} HTTP request(s)", client.calls() - before);
    let xml = run(&ex, &who, "DescribeVolumes", &[("Filter.1.Name", "snapshot-id"), ("Filter.1.Value.1", &snap)]).await;
    assert_eq!(all(&xml, "volumeId"), vec![vol2.clone()]);
    let xml = run(
        &ex,
        &who,
        "DescribeVolumes",
        &[
            ("Filter.1.Name", "status"),
            ("Filter.1.Value.1", "available"),
            ("Filter.2.Name", "size"),
            ("Filter.2.Value.1", "10"),
        ],
    )
    .await;
    assert_eq!(all(&xml, "volumeId"), vec![vol.clone(), vol2.clone()]);
    let all_vols = all(&run(&ex, &who, "DescribeVolumes", &[]).await, "volumeId");
    assert!(all_vols.len() >= 3, "{all_vols:?}");
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut p = vec![("MaxResults", "5".to_string())];
        if let Some(t) = &token {
            p.push(("NextToken", t.clone()));
        }
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let xml = run(&ex, &who, "DescribeVolumes", &p).await;
        paged.extend(all(&xml, "volumeId"));
        match all(&xml, "nextToken").pop() {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(paged, all_vols);
    // Above DescribeVolumes' 500: clamped, as EC2 does (issue 12 item 12); below 5: an error.
    let xml = run(&ex, &who, "DescribeVolumes", &[("MaxResults", "501")]).await;
    assert_eq!(all(&xml, "volumeId"), all_vols);
    let (code, _) = fail(&ex, &who, "DescribeVolumes", &[("MaxResults", "4")]).await;
    assert_eq!(code, "InvalidParameterValue");
    let (code, _) = fail(&ex, &who, "DescribeVolumes", &[("MaxResults", "5"), ("VolumeId.1", &vol)]).await;
    assert_eq!(code, "InvalidParameterCombination");

    // DescribeVolumeStatus.
    let xml = run(&ex, &who, "DescribeVolumeStatus", &[("VolumeId.1", &vol)]).await;
    assert_eq!(
        children(&xml, "item")[..5],
        ["volumeId", "availabilityZone", "volumeStatus", "eventsSet", "actionsSet"]
    );
    assert_eq!(all(&xml, "status"), vec!["ok", "passed"]);
    assert_eq!(one(&xml, "name"), "io-enabled");
    let xml = run(
        &ex,
        &who,
        "DescribeVolumeStatus",
        &[("Filter.1.Name", "volume-status.status"), ("Filter.1.Value.1", "impaired")],
    )
    .await;
    assert_eq!(xml, "<volumeStatusSet/>");

    // Delete: snapshot and volumes go; their ids then do not exist.
    assert_eq!(run(&ex, &who, "DeleteSnapshot", &[("SnapshotId", &snap)]).await, "<return>true</return>");
    assert_eq!(run(&ex, &who, "DeleteVolume", &[("VolumeId", &vol2)]).await, "<return>true</return>");
    assert_eq!(run(&ex, &who, "DeleteVolume", &[("VolumeId", &vol)]).await, "<return>true</return>");
    let (code, _) = fail(&ex, &who, "DescribeVolumes", &[("VolumeId.1", &vol)]).await;
    assert_eq!(code, "InvalidVolume.NotFound");
    for _ in 0..400 {
        match ex.execute(&req("DescribeSnapshots", &[("SnapshotId.1", &snap)]), &who).await {
            Err(e) => {
                assert_eq!(e.code, "InvalidSnapshot.NotFound");
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let (code, _) = fail(&ex, &who, "DeleteSnapshot", &[("SnapshotId", &snap)]).await;
    assert_eq!(code, "InvalidSnapshot.NotFound");
}

/// (action, parameters, expected error code)
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn volume_errors_and_dry_run() {
    let (_sim, ex, who, client) = sim_env().await;
    let cases: Vec<Case> = vec![
        ("CreateVolume", vec![("Size", "10")], "MissingParameter"),
        ("CreateVolume", vec![("AvailabilityZone", "zone1")], "MissingParameter"),
        ("CreateVolume", vec![("Size", "0"), ("AvailabilityZone", "zone1")], "InvalidParameterValue"),
        ("CreateVolume", vec![("Size", "16385"), ("AvailabilityZone", "zone1")], "InvalidParameterValue"),
        ("CreateVolume", vec![("Size", "ten"), ("AvailabilityZone", "zone1")], "InvalidParameterValue"),
        ("CreateVolume", vec![("Size", "10"), ("AvailabilityZone", "nowhere")], "InvalidZone.NotFound"),
        (
            "CreateVolume",
            vec![("Size", "10"), ("AvailabilityZone", "zone1"), ("VolumeType", "magnetic")],
            "InvalidParameterValue",
        ),
        ("CreateVolume", vec![("SnapshotId", "snap-1"), ("AvailabilityZone", "zone1")], "InvalidSnapshotID.Malformed"),
        (
            "CreateVolume",
            vec![("SnapshotId", "snap-0123456789abcdef0"), ("AvailabilityZone", "zone1")],
            "InvalidSnapshot.NotFound",
        ),
        (
            "CreateVolume",
            vec![("Size", "1"), ("AvailabilityZone", "zone1"), ("TagSpecification.1.ResourceType", "instance")],
            "InvalidParameterValue",
        ),
        // CloudStack's own limit (customdiskofferingmaxsize) comes back as InvalidParameterValue.
        ("CreateVolume", vec![("Size", "2000"), ("AvailabilityZone", "zone1")], "InvalidParameterValue"),
        ("DeleteVolume", vec![], "MissingParameter"),
        ("DeleteVolume", vec![("VolumeId", "vol-xyz")], "InvalidVolumeID.Malformed"),
        ("DeleteVolume", vec![("VolumeId", "vol-0123456789abcdef0")], "InvalidVolume.NotFound"),
        (
            "DescribeVolumes",
            vec![("VolumeId.1", "vol-0123456789abcdef0"), ("VolumeId.2", "vol-0123456789abcdef1")],
            "InvalidVolume.NotFound",
        ),
        ("DescribeVolumes", vec![("Filter.1.Name", "bogus"), ("Filter.1.Value.1", "x")], "InvalidParameterValue"),
        ("DescribeSnapshots", vec![("SnapshotId.1", "snap-0123456789abcdef0")], "InvalidSnapshot.NotFound"),
        ("DescribeSnapshots", vec![("SnapshotId.1", "vol-0123456789abcdef0")], "InvalidSnapshotID.Malformed"),
        ("DescribeSnapshots", vec![("MaxResults", "4")], "InvalidParameterValue"),
        ("CreateSnapshot", vec![], "MissingParameter"),
        ("CreateSnapshot", vec![("VolumeId", "vol-0123456789abcdef0")], "InvalidVolume.NotFound"),
        (
            "AttachVolume",
            vec![("VolumeId", "vol-0123456789abcdef0"), ("InstanceId", "i-0123456789abcdef0")],
            "MissingParameter",
        ),
    ];
    for (action, p, code) in cases {
        let e = ex.execute(&req(action, &p), &who).await.expect_err(action);
        assert_eq!(e.code, code, "{action} {p:?}: {}", e.message);
    }
    let e = ex
        .execute(
            &req(
                "DescribeVolumes",
                &[("VolumeId.1", "vol-0123456789abcdef0"), ("VolumeId.2", "vol-0123456789abcdef1")],
            ),
            &who,
        )
        .await
        .unwrap_err();
    assert_eq!(e.message, "The volumes 'vol-0123456789abcdef0, vol-0123456789abcdef1' do not exist.");

    // DryRun: checked, nothing made.
    let before = all(&run(&ex, &who, "DescribeVolumes", &[]).await, "volumeId").len();
    let e = ex
        .execute(&req("CreateVolume", &[("Size", "3"), ("AvailabilityZone", "zone1"), ("DryRun", "true")]), &who)
        .await
        .unwrap_err();
    assert_eq!(e.code, "DryRunOperation");
    let e = ex
        .execute(&req("CreateVolume", &[("Size", "0"), ("AvailabilityZone", "zone1"), ("DryRun", "true")]), &who)
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    assert_eq!(all(&run(&ex, &who, "DescribeVolumes", &[]).await, "volumeId").len(), before);

    let vol = one(&run(&ex, &who, "CreateVolume", &[("Size", "2"), ("AvailabilityZone", "zone2")]).await, "volumeId");
    wait_volume(&ex, &who, &vol, "available").await;
    let iid = running_instance(&ex, &who, "zone2").await;
    for bad in ["/dev/sda", "/dev/sda1", "/dev/hdb", "sdf1", ""] {
        let e = ex
            .execute(&req("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &iid), ("Device", bad)]), &who)
            .await
            .unwrap_err();
        assert!(e.code == "InvalidParameterValue" || e.code == "MissingParameter", "{bad}: {}", e.code);
    }
    for (action, p) in [
        (
            "AttachVolume",
            vec![("VolumeId", vol.as_str()), ("InstanceId", iid.as_str()), ("Device", "xvdg"), ("DryRun", "true")],
        ),
        ("DeleteVolume", vec![("VolumeId", vol.as_str()), ("DryRun", "true")]),
        ("DetachVolume", vec![("VolumeId", vol.as_str()), ("DryRun", "true")]),
        ("CreateSnapshot", vec![("VolumeId", vol.as_str()), ("DryRun", "true")]),
    ] {
        let e = ex.execute(&req(action, &p), &who).await.unwrap_err();
        assert_eq!(e.code, "DryRunOperation", "{action}");
    }
    // xvd names attach too (reported back as the sd name CloudStack's device id stands for).
    let calls = client.calls();
    let xml = run(&ex, &who, "AttachVolume", &[("VolumeId", &vol), ("InstanceId", &iid), ("Device", "xvdg")]).await;
    assert_eq!(one(&xml, "device"), "xvdg");
    eprintln!("AttachVolume: {} HTTP requests", client.calls() - calls);
    let xml = wait_volume(&ex, &who, &vol, "in-use").await;
    assert_eq!(all(&xml, "device"), vec!["/dev/sdg"]);
    // Another user cannot see alice's volume.
    let bob = _sim.user("bob").expect("bob").clone();
    let bob = Principal {
        access_key: bob.api_key.clone(),
        cloudstack: CsCredentials { api_key: bob.api_key, secret_key: bob.secret_key },
        account: Some(bob.account),
        account_id: Some(bob.account_id),
    };
    let e = ex.execute(&req("DescribeVolumes", &[("VolumeId.1", &vol)]), &bob).await.unwrap_err();
    assert_eq!(e.code, "InvalidVolume.NotFound");
    let e = ex.execute(&req("DeleteVolume", &[("VolumeId", &vol)]), &bob).await.unwrap_err();
    assert_eq!(e.code, "InvalidVolume.NotFound");
}
