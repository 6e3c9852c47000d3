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
    let dir = std::env::temp_dir().join(format!("ec2bridge-pushdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/default.toml"))
        .unwrap()
        .replace("default_vm_limit = 20", "default_vm_limit = -1")
        + &format!("\n[generate]\nvms = {VMS}\naccounts = [\"alice\"]\n");
    let path = dir.join("seed.toml");
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
