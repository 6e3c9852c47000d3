//! RunInstances with NetworkInterface.N leaves nothing half-done when a step after the deploy
//! fails (docs/network-interfaces.md "Interfaces at launch"): the simulator fails every
//! `addIpToNic` job; the launch answers the error, the VM is destroyed, no interface record
//! stays, and the addresses the launch claimed are free again.

mod mapping_support;

use std::sync::Arc;
use std::time::Duration;

use ec2bridge::cloudstack::{ClientOptions, CsClient};
use ec2bridge::mapping::Executor;
use ec2bridge::sim::SimOptions;
use mapping_support::{all, one, req, sim_principal};

const DEFAULT_SEED: &str = include_str!("../seeds/default.toml");
const UBUNTU: &str = "e8e3401a-f3f0-4cec-8671-7b6085bf6e19";

#[tokio::test]
async fn a_failed_secondary_address_undoes_the_launch() {
    let seed = format!(
        "{DEFAULT_SEED}\n[[faults]]\ncommand = \"addIpToNic\"\njob = \"fail\"\njob_error_code = 530\njob_error_text = \"boom\"\n"
    );
    let sim = ec2bridge::sim::start_with_seed(
        SimOptions { listen: "127.0.0.1:0".parse().unwrap(), seed: None, fast: true, state_dir: None },
        &seed,
    )
    .await
    .expect("simulator starts");
    let opts = ClientOptions { poll_initial: Duration::from_millis(5), ..Default::default() };
    let client = Arc::new(CsClient::new(&sim.endpoint, opts).expect("client"));
    let ex = Executor::new(client, None).expect("table");
    let alice = sim_principal(&sim, "alice");
    let ok = |action: &'static str, p: Vec<(&'static str, String)>| {
        let ex = &ex;
        let alice = &alice;
        async move {
            let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            match ex.execute(&req(action, &p), alice).await {
                Ok(x) => x,
                Err(e) => panic!("{action}: {} {}", e.code, e.message),
            }
        }
    };
    let vpc = one(&ok("CreateVpc", vec![("CidrBlock", "10.71.0.0/16".into())]).await, "vpcId");
    let a =
        one(&ok("CreateSubnet", vec![("VpcId", vpc.clone()), ("CidrBlock", "10.71.1.0/24".into())]).await, "subnetId");
    let b =
        one(&ok("CreateSubnet", vec![("VpcId", vpc.clone()), ("CidrBlock", "10.71.2.0/24".into())]).await, "subnetId");
    let ami = ec2bridge::ids::ec2_id(ec2bridge::ids::Kind::Image, UBUNTU);
    let launch = [
        ("ImageId", ami.as_str()),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("NetworkInterface.1.DeviceIndex", "0"),
        ("NetworkInterface.1.SubnetId", a.as_str()),
        ("NetworkInterface.1.PrivateIpAddress", "10.71.1.10"),
        ("NetworkInterface.2.DeviceIndex", "1"),
        ("NetworkInterface.2.SubnetId", b.as_str()),
        ("NetworkInterface.2.PrivateIpAddress", "10.71.2.10"),
        ("NetworkInterface.2.SecondaryPrivateIpAddressCount", "1"),
    ];
    let e = ex.execute(&req("RunInstances", &launch), &alice).await.expect_err("addIpToNic fails");
    assert_ne!(e.code.to_string(), "", "an EC2 error: {}", e.message);
    // No interface of the launch is left once the VM's destroy (started by the undo, not waited
    // for, as EC2's shutting-down) is done; no live instance meanwhile.
    let mut enis = String::new();
    for _ in 0..100 {
        enis = ok(
            "DescribeNetworkInterfaces",
            vec![("Filter.1.Name", "vpc-id".into()), ("Filter.1.Value.1", vpc.clone())],
        )
        .await;
        if all(&enis, "networkInterfaceId").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(all(&enis, "networkInterfaceId"), Vec::<String>::new(), "{enis}");
    let live = ok(
        "DescribeInstances",
        vec![
            ("Filter.1.Name", "vpc-id".into()),
            ("Filter.1.Value.1", vpc.clone()),
            ("Filter.2.Name", "instance-state-name".into()),
            ("Filter.2.Value.1", "pending".into()),
            ("Filter.2.Value.2", "running".into()),
        ],
    )
    .await;
    assert_eq!(all(&live, "instanceId"), Vec::<String>::new(), "{live}");
    // The claimed addresses are free again: interfaces can take them.
    for (subnet, ip) in [(&a, "10.71.1.10"), (&b, "10.71.2.10")] {
        let made =
            ok("CreateNetworkInterface", vec![("SubnetId", subnet.clone()), ("PrivateIpAddress", ip.into())]).await;
        assert_eq!(one(&made, "privateIpAddress"), ip);
    }
}
