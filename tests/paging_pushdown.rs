//! Paging pushed down to CloudStack (`exec::pushed_window`, docs/mappings.md "Paging"):
//! DescribeInstances with MaxResults fetches only the CloudStack pages that cover the window,
//! and every page, token and end of the listing is what cutting the whole list gave. With a
//! filter or a tombstone the whole list is read, as before.

mod mapping_support;

use ec2bridge::mapping::Executor;
use mapping_support::{all, req, sim_principal};

/// More VMs than one CloudStack page of 500: the whole list takes three list calls.
const VMS: usize = 1100;

async fn sim_with_vms()
-> (ec2bridge::sim::SimHandle, Executor, ec2bridge::auth::Principal, std::sync::Arc<ec2bridge::cloudstack::CsClient>) {
    sim_with(VMS).await
}

/// `vms` VMs in alice's account (the simulator's volume limit of 40 leaves room for new volumes
/// below 40).
async fn sim_with(
    vms: usize,
) -> (ec2bridge::sim::SimHandle, Executor, ec2bridge::auth::Principal, std::sync::Arc<ec2bridge::cloudstack::CsClient>)
{
    let dir = std::env::temp_dir().join(format!("ec2bridge-pushdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/default.toml"))
        .unwrap()
        .replace("default_vm_limit = 20", "default_vm_limit = -1")
        + &format!("\n[generate]\nvms = {vms}\naccounts = [\"alice\"]\n");
    let path = dir.join(format!("seed-{vms}.toml"));
    std::fs::write(&path, seed).unwrap();
    let sim = ec2bridge::sim::start(ec2bridge::sim::SimOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: Some(path),
        fast: true,
        state_dir: None,
    })
    .await
    .expect("simulator starts");
    let opts = ec2bridge::cloudstack::ClientOptions {
        poll_initial: std::time::Duration::from_millis(5),
        ..Default::default()
    };
    let client = std::sync::Arc::new(ec2bridge::cloudstack::CsClient::new(&sim.endpoint, opts).unwrap());
    let ex = Executor::new(client.clone(), None).unwrap();
    let who = sim_principal(&sim, "alice");
    (sim, ex, who, client)
}

/// Page through DescribeInstances with these MaxResults (one per request, the last repeated):
/// the instance ids in order, and the CloudStack calls the whole walk made.
async fn walk(
    ex: &Executor,
    who: &ec2bridge::auth::Principal,
    client: &ec2bridge::cloudstack::CsClient,
    sizes: &[&str],
    extra: &[(&str, &str)],
) -> (Vec<String>, u64) {
    let before = client.calls();
    let (mut ids, mut token, mut i) = (Vec::new(), None::<String>, 0);
    loop {
        let mut p: Vec<(&str, &str)> = extra.to_vec();
        p.push(("MaxResults", sizes[i.min(sizes.len() - 1)]));
        if let Some(t) = &token {
            p.push(("NextToken", t));
        }
        let xml = ex.execute(&req("DescribeInstances", &p), who).await.expect("DescribeInstances");
        ids.extend(all(&xml, "instanceId"));
        token = all(&xml, "nextToken").into_iter().next();
        i += 1;
        if token.is_none() {
            break;
        }
        assert!(i < 1000, "paging does not end");
    }
    (ids, client.calls() - before)
}

#[tokio::test]
async fn pages_come_from_cloudstack_pages_and_match_the_whole_list() {
    let (_sim, ex, who, client) = sim_with_vms().await;
    let whole_xml = ex.execute(&req("DescribeInstances", &[]), &who).await.unwrap();
    let whole = all(&whole_xml, "instanceId");
    assert!(whole.len() >= VMS, "{}", whole.len());

    // One request of the whole list vs one of a window: the window needs one VM page, the
    // whole list three (the other calls, volumes and metadata, are the same for both).
    let c0 = client.calls();
    ex.execute(&req("DescribeInstances", &[]), &who).await.unwrap();
    let whole_calls = client.calls() - c0;
    let c0 = client.calls();
    let xml = ex.execute(&req("DescribeInstances", &[("MaxResults", "5")]), &who).await.unwrap();
    let window_calls = client.calls() - c0;
    assert_eq!(all(&xml, "instanceId"), whole[..5].to_vec());
    assert_eq!(window_calls + 2, whole_calls, "the window read one page of VMs instead of three");

    // Aligned, unaligned and page-crossing windows give the whole list, in order, exactly once.
    for sizes in [&["1000"][..], &["500"], &["7", "600", "333"], &["5", "999"]] {
        let (ids, _) = walk(&ex, &who, &client, sizes, &[]).await;
        assert_eq!(ids, whole, "MaxResults {sizes:?}");
    }

    // A filter needs the whole list: same answers as before (every instance matches).
    let (ids, _) =
        walk(&ex, &who, &client, &["1000"], &[("Filter.1.Name", "instance-state-name"), ("Filter.1.Value.1", "*")])
            .await;
    assert_eq!(ids, whole);
}

#[tokio::test]
async fn a_tombstone_makes_paging_read_the_whole_list() {
    let (_sim, ex, who, client) = sim_with_vms().await;
    let whole = all(&ex.execute(&req("DescribeInstances", &[]), &who).await.unwrap(), "instanceId");
    let gone = whole[3].clone();
    ex.execute(&req("TerminateInstances", &[("InstanceId.1", &gone)]), &who).await.unwrap();
    // Until CloudStack stops listing it, then kept by the gateway as terminated (a tombstone).
    let mut after = Vec::new();
    for _ in 0..400 {
        let xml = ex.execute(&req("DescribeInstances", &[]), &who).await.unwrap();
        after = all(&xml, "instanceId");
        if after.last() == Some(&gone) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(after.last(), Some(&gone), "the terminated instance is listed last, from its tombstone");
    let c0 = client.calls();
    ex.execute(&req("DescribeInstances", &[]), &who).await.unwrap();
    let whole_calls = client.calls() - c0;
    let c0 = client.calls();
    let xml = ex.execute(&req("DescribeInstances", &[("MaxResults", "5")]), &who).await.unwrap();
    assert_eq!(client.calls() - c0, whole_calls, "with a tombstone the whole list is read");
    assert_eq!(all(&xml, "instanceId"), after[..5].to_vec());
    let (ids, _) = walk(&ex, &who, &client, &["1000"], &[]).await;
    assert_eq!(ids, after);
}

/// The volumes behind blockDeviceMapping: listed whole (CloudStack's listVolumes selects by one
/// VM at most) by the first page of a walk and reused by the pages after it, so a walk reads the
/// account's volumes once; the pages show what the whole list shows.
#[tokio::test]
async fn a_walk_lists_the_volumes_once() {
    let (_sim, ex, who, client) = sim_with_vms().await;
    let whole_xml = ex.execute(&req("DescribeInstances", &[]), &who).await.unwrap();
    let whole = all(&whole_xml, "instanceId");
    let whole_vols = all(&whole_xml, "volumeId");
    assert_eq!(whole_vols.len(), whole.len(), "one root volume per instance");

    // Page by page: the first lists one page of VMs and every volume (three pages of 500),
    // each page after it one page of VMs only.
    let (mut ids, mut vols, mut devs, mut token, mut calls) = (vec![], vec![], vec![], None::<String>, vec![]);
    loop {
        let mut p = vec![("MaxResults", "500")];
        if let Some(t) = &token {
            p.push(("NextToken", t));
        }
        let c0 = client.calls();
        let xml = ex.execute(&req("DescribeInstances", &p), &who).await.unwrap();
        let n = client.calls() - c0;
        ids.extend(all(&xml, "instanceId"));
        vols.extend(all(&xml, "volumeId"));
        devs.extend(all(&xml, "deviceName"));
        calls.push(n);
        token = all(&xml, "nextToken").into_iter().next();
        if token.is_none() {
            break;
        }
    }
    assert_eq!(ids, whole);
    assert_eq!(vols, whole_vols);
    assert_eq!(devs, all(&whole_xml, "deviceName"));
    assert_eq!(calls, vec![1 + 3, 1, 1], "VM page + the volume listing, then one VM page each");
}

/// A volume the caller attaches through the gateway between two pages of a walk shows on the
/// next page: its change drops the walk's volume listing.
#[tokio::test]
async fn a_change_between_pages_shows_on_the_next_page() {
    let (_sim, ex, who, _client) = sim_with(12).await;
    let whole = all(&ex.execute(&req("DescribeInstances", &[]), &who).await.unwrap(), "instanceId");
    assert_eq!(whole.len(), 12);
    let xml = ex.execute(&req("DescribeInstances", &[("MaxResults", "5")]), &who).await.unwrap();
    let token = all(&xml, "nextToken").remove(0);
    let target = whole[7].clone();
    let one = ex.execute(&req("DescribeInstances", &[("InstanceId.1", &target)]), &who).await.unwrap();
    let zone = all(&one, "availabilityZone").remove(0);
    let created = ex
        .execute(&req("CreateVolume", &[("Size", "10"), ("AvailabilityZone", &zone)]), &who)
        .await
        .expect("CreateVolume");
    let vol = all(&created, "volumeId").remove(0);
    let mut attached = false;
    let mut last = None;
    for _ in 0..400 {
        let r = ex
            .execute(&req("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &target), ("Device", "/dev/sdf")]), &who)
            .await;
        match r {
            Ok(_) => {
                attached = true;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(attached, "the new volume attaches: {last:?}");
    let mut shown = false;
    for _ in 0..400 {
        let dv = ex.execute(&req("DescribeVolumes", &[("VolumeId.1", &vol)]), &who).await.unwrap();
        if all(&dv, "status").contains(&"attached".to_string()) {
            shown = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(shown, "the attachment completes");
    let page2 =
        ex.execute(&req("DescribeInstances", &[("MaxResults", "5"), ("NextToken", &token)]), &who).await.unwrap();
    assert!(all(&page2, "instanceId").contains(&target));
    assert!(all(&page2, "volumeId").contains(&vol), "the attached volume shows on the next page");
}
