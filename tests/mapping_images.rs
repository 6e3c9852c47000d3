//! End to end: the image actions (CreateImage, RegisterImage, DeregisterImage, Describe/Modify/
//! ResetImageAttribute, DescribeImages filters) through the executor and the real CloudStack
//! client against the in-process simulator (fast mode).

mod mapping_support;

use std::sync::Arc;
use std::time::Duration;

use ec2bridge::auth::Principal;
use ec2bridge::cloudstack::{ClientOptions, CsClient, CsCredentials};
use ec2bridge::ids::{Kind, ec2_id};
use ec2bridge::mapping::Executor;
use ec2bridge::sim::{SimHandle, SimOptions};
use mapping_support::{alice_number, all, children, one, req};

const UBUNTU: &str = "e8e3401a-f3f0-4cec-8671-7b6085bf6e19";
const DEFAULT_SEED: &str = include_str!("../seeds/default.toml");
/// A second account in alice's domain (CloudStack shares templates within the owner's domain).
const CAROL: &str = r#"
[[accounts]]
name = "carol"
domain = "dev"
type = "user"
[[accounts.users]]
username = "carol"
"#;

struct Env {
    _sim: SimHandle,
    ex: Executor,
    client: Arc<CsClient>,
}

async fn start(extra_seed: &str) -> Env {
    let seed = format!("{DEFAULT_SEED}\n{CAROL}\n{extra_seed}");
    let sim = ec2bridge::sim::start_with_seed(
        SimOptions { listen: "127.0.0.1:0".parse().unwrap(), seed: None, fast: true, state_dir: None },
        &seed,
    )
    .await
    .expect("simulator starts");
    let opts = ClientOptions { poll_initial: Duration::from_millis(5), ..Default::default() };
    let client = Arc::new(CsClient::new(&sim.endpoint, opts).expect("client"));
    // The admin keys number other tenants' accounts (docs/accounts.md).
    let admin = sim.users.iter().find(|u| u.is_admin).expect("seeded admin");
    let opts = ec2bridge::mapping::ExecutorOptions {
        admin: Some(CsCredentials { api_key: admin.api_key.clone(), secret_key: admin.secret_key.clone() }),
        ..Default::default()
    };
    let ex = Executor::with_options(client.clone(), None, opts).expect("table");
    Env { _sim: sim, ex, client }
}

fn user(env: &Env, name: &str) -> Principal {
    let u = env._sim.user(name).unwrap_or_else(|| panic!("user {name}")).clone();
    Principal {
        access_key: u.api_key.clone(),
        cloudstack: CsCredentials { api_key: u.api_key, secret_key: u.secret_key },
        account: Some(u.account),
        account_id: Some(u.account_id),
    }
}

async fn ok(env: &Env, who: &Principal, action: &str, p: &[(&str, &str)]) -> String {
    match env.ex.execute(&req(action, p), who).await {
        Ok(x) => x,
        Err(e) => panic!("{action} {p:?}: {} {}", e.code, e.message),
    }
}

async fn err(env: &Env, who: &Principal, action: &str, p: &[(&str, &str)]) -> (String, String) {
    match env.ex.execute(&req(action, p), who).await {
        Ok(x) => panic!("{action} {p:?} should fail, answered {x}"),
        Err(e) => (e.code.to_string(), e.message),
    }
}

/// CloudStack state of one VM, straight from the simulator.
async fn vm_state(env: &Env, who: &Principal, iid: &str) -> String {
    let xml = ok(env, who, "DescribeInstances", &[("InstanceId.1", iid)]).await;
    let wrapped = format!("<r>{xml}</r>");
    let doc = roxmltree::Document::parse(&wrapped).unwrap();
    let st = doc.descendants().find(|n| n.has_tag_name("instanceState")).expect("instanceState");
    st.children().find(|c| c.has_tag_name("name")).and_then(|c| c.text()).unwrap_or("").to_string()
}

async fn wait_vm(env: &Env, who: &Principal, iid: &str, state: &str) {
    for _ in 0..500 {
        if vm_state(env, who, iid).await == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{iid} never {state}");
}

/// Poll as boto3's image_available waiter does (DescribeImages ImageId, State == available).
async fn wait_image(env: &Env, who: &Principal, ami: &str) -> String {
    for _ in 0..500 {
        let xml = ok(env, who, "DescribeImages", &[("ImageId.1", ami)]).await;
        if one(&xml, "imageState") == "available" {
            return xml;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{ami} never available");
}

async fn run_one(env: &Env, who: &Principal) -> String {
    let ami = ec2_id(Kind::Image, UBUNTU);
    let xml = ok(env, who, "RunInstances", &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1")]).await;
    let iid = one(&xml, "instanceId");
    wait_vm(env, who, &iid, "running").await;
    iid
}

async fn template_count(env: &Env, who: &Principal) -> usize {
    all(&ok(env, who, "DescribeImages", &[("Owner.1", "self")]).await, "imageId").len()
}

#[tokio::test]
async fn create_image_from_running_and_stopped_instances() {
    let env = start("").await;
    let alice = user(&env, "alice");
    let iid = run_one(&env, &alice).await;

    // Refusals first: nothing may be made or stopped by them.
    let (c, m) =
        err(&env, &alice, "CreateImage", &[("InstanceId", &iid), ("Name", "web-1"), ("NoReboot", "true")]).await;
    assert_eq!(c, "IncorrectInstanceState", "{m}");
    assert!(m.contains(&iid), "{m}");
    assert_eq!(vm_state(&env, &alice, &iid).await, "running");
    let (c, _) = err(&env, &alice, "CreateImage", &[("InstanceId", &iid), ("Name", "x")]).await;
    assert_eq!(c, "InvalidAMIName.Malformed");
    let (c, _) = err(&env, &alice, "CreateImage", &[("InstanceId", &iid), ("Name", "bad*name")]).await;
    assert_eq!(c, "InvalidAMIName.Malformed");
    let (c, _) = err(&env, &alice, "CreateImage", &[("InstanceId", &iid)]).await;
    assert_eq!(c, "MissingParameter");
    let (c, _) = err(&env, &alice, "CreateImage", &[("InstanceId", "i-0123456789abcdef0"), ("Name", "web-1")]).await;
    assert_eq!(c, "InvalidInstanceID.NotFound");
    let (c, _) = err(&env, &alice, "CreateImage", &[("InstanceId", "vm-1"), ("Name", "web-1")]).await;
    assert_eq!(c, "InvalidInstanceID.Malformed");
    let (c, _) = err(&env, &alice, "CreateImage", &[("InstanceId", &iid), ("Name", "web-1"), ("DryRun", "true")]).await;
    assert_eq!(c, "DryRunOperation");
    assert_eq!(template_count(&env, &alice).await, 0);
    assert_eq!(vm_state(&env, &alice, &iid).await, "running");

    // Running: stopped, imaged, started again; the id comes at once, pending.
    let (r, calls) = env
        .ex
        .execute_counted(
            &req("CreateImage", &[("InstanceId", &iid), ("Name", "web-1"), ("Description", "web server")]),
            &alice,
        )
        .await;
    let xml = r.expect("CreateImage");
    eprintln!("CreateImage (running instance): {calls} backend calls");
    assert_eq!(children(&format!("<x>{xml}</x>"), "x"), vec!["imageId"]);
    let ami = one(&xml, "imageId");
    assert!(ami.starts_with("ami-") && ami.len() == 21, "{ami}");
    let d = ok(&env, &alice, "DescribeImages", &[("ImageId.1", &ami)]).await;
    assert!(["pending", "available"].contains(&one(&d, "imageState").as_str()));
    let d = wait_image(&env, &alice, &ami).await;
    assert_eq!(one(&d, "name"), "web-1");
    assert_eq!(one(&d, "description"), "web server");
    assert_eq!(one(&d, "isPublic"), "false");
    assert_eq!(one(&d, "imageOwnerId"), alice_number());
    wait_vm(&env, &alice, &iid, "running").await;

    // Same name again: EC2 names are unique per account.
    let (c, m) = err(&env, &alice, "CreateImage", &[("InstanceId", &iid), ("Name", "web-1")]).await;
    assert_eq!(c, "InvalidAMIName.Duplicate", "{m}");
    assert!(m.contains(&ami), "{m}");

    // Stopped: imaged and left stopped.
    ok(&env, &alice, "StopInstances", &[("InstanceId.1", &iid)]).await;
    wait_vm(&env, &alice, &iid, "stopped").await;
    let xml = ok(&env, &alice, "CreateImage", &[("InstanceId", &iid), ("Name", "web-2"), ("NoReboot", "true")]).await;
    let ami2 = one(&xml, "imageId");
    let d = wait_image(&env, &alice, &ami2).await;
    assert_eq!(one(&d, "description"), "web-2", "description defaults to the name");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(vm_state(&env, &alice, &iid).await, "stopped");

    // One listing per templatefilter, however many ids are asked for.
    let (r, calls) =
        env.ex.execute_counted(&req("DescribeImages", &[("ImageId.1", &ami), ("ImageId.2", &ami2)]), &alice).await;
    assert_eq!(all(&r.unwrap(), "imageId").len(), 2);
    eprintln!("DescribeImages (2 ids): {calls} backend calls");
    assert!(calls <= 3, "{calls}");

    // Launch from the new image.
    let xml = ok(&env, &alice, "RunInstances", &[("ImageId", &ami2), ("MinCount", "1"), ("MaxCount", "1")]).await;
    assert_eq!(one(&xml, "imageId"), ami2);

    // Filters on the new images.
    let f =
        |name: &'static str, v: &'static str| [("Owner.1", "self"), ("Filter.1.Name", name), ("Filter.1.Value.1", v)];
    assert_eq!(all(&ok(&env, &alice, "DescribeImages", &f("name", "web-*")).await, "imageId").len(), 2);
    assert_eq!(
        all(&ok(&env, &alice, "DescribeImages", &f("description", "web server")).await, "imageId"),
        vec![ami.clone()]
    );
    assert_eq!(all(&ok(&env, &alice, "DescribeImages", &f("is-public", "false")).await, "imageId").len(), 2);
    assert_eq!(all(&ok(&env, &alice, "DescribeImages", &f("state", "available")).await, "imageId").len(), 2);
    assert_eq!(all(&ok(&env, &alice, "DescribeImages", &f("image-type", "machine")).await, "imageId").len(), 2);
    assert_eq!(all(&ok(&env, &alice, "DescribeImages", &f("owner-id", "bob")).await, "imageId").len(), 0);

    // Another account cannot image alice's instance.
    let bob = user(&env, "bob");
    let (c, _) = err(&env, &bob, "CreateImage", &[("InstanceId", &iid), ("Name", "steal")]).await;
    assert_eq!(c, "InvalidInstanceID.NotFound");
}

#[tokio::test]
async fn create_image_failure_restarts_the_instance() {
    let env = start(
        r#"
[[faults]]
command = "createTemplate"
error_code = 535
"#,
    )
    .await;
    let alice = user(&env, "alice");
    let iid = run_one(&env, &alice).await;
    let (c, _) = err(&env, &alice, "CreateImage", &[("InstanceId", &iid), ("Name", "web-1")]).await;
    assert_eq!(c, "ResourceLimitExceeded");
    assert_eq!(template_count(&env, &alice).await, 0);
    // The stop it made is undone.
    wait_vm(&env, &alice, &iid, "running").await;
}

#[tokio::test]
async fn register_describe_and_deregister() {
    let env = start("").await;
    let alice = user(&env, "alice");
    let (c, _) = err(&env, &alice, "RegisterImage", &[("Name", "img-a")]).await;
    assert_eq!(c, "MissingParameter");
    let (c, _) = err(
        &env,
        &alice,
        "RegisterImage",
        &[("Name", "img-a"), ("ImageLocation", "http://images.example/a.qcow2"), ("Architecture", "sparc")],
    )
    .await;
    assert_eq!(c, "InvalidParameterValue");
    let (c, _) =
        err(&env, &alice, "RegisterImage", &[("Name", "img-a"), ("ImageLocation", "ftp://images.example/a.qcow2")])
            .await;
    assert_eq!(c, "InvalidParameterValue");

    let (r, calls) = env
        .ex
        .execute_counted(
            &req(
                "RegisterImage",
                &[("Name", "img-a"), ("ImageLocation", "http://images.example/a.vhd.bz2"), ("Architecture", "x86_64")],
            ),
            &alice,
        )
        .await;
    let ami = one(&r.expect("RegisterImage"), "imageId");
    eprintln!("RegisterImage: {calls} backend calls");
    let d = wait_image(&env, &alice, &ami).await;
    assert_eq!(one(&d, "hypervisor"), "xen", "VHD -> XenServer");
    assert_eq!(one(&d, "description"), "img-a");
    let (c, _) =
        err(&env, &alice, "RegisterImage", &[("Name", "img-a"), ("ImageLocation", "http://images.example/b.qcow2")])
            .await;
    assert_eq!(c, "InvalidAMIName.Duplicate");

    // The awsapi form: format:zonename:ostypename:hypervisor.
    let xml = ok(
        &env,
        &alice,
        "RegisterImage",
        &[
            ("Name", "img-b"),
            ("Description", "CentOS base"),
            ("ImageLocation", "http://images.example/b"),
            ("Architecture", "qcow2:zone2:CentOS 7:KVM"),
        ],
    )
    .await;
    let ami_b = one(&xml, "imageId");
    let d = ok(&env, &alice, "DescribeImages", &[("ImageId.1", &ami_b)]).await;
    assert_eq!(one(&d, "hypervisor"), "kvm");
    assert_eq!(one(&d, "description"), "CentOS base");
    let (c, _) = err(
        &env,
        &alice,
        "RegisterImage",
        &[("Name", "img-c"), ("ImageLocation", "http://images.example/c.qcow2"), ("Architecture", "qcow2:nowhere::")],
    )
    .await;
    assert_eq!(c, "InvalidParameterValue");

    // Deregister: gone at once; again -> NotFound.
    let (r, calls) = env.ex.execute_counted(&req("DeregisterImage", &[("ImageId", &ami)]), &alice).await;
    assert_eq!(one(&r.unwrap(), "return"), "true");
    eprintln!("DeregisterImage: {calls} backend calls");
    let (c, _) = err(&env, &alice, "DescribeImages", &[("ImageId.1", &ami)]).await;
    assert_eq!(c, "InvalidAMIID.NotFound");
    let (c, _) = err(&env, &alice, "DeregisterImage", &[("ImageId", &ami)]).await;
    assert_eq!(c, "InvalidAMIID.NotFound");
    let (c, _) = err(&env, &alice, "DeregisterImage", &[("ImageId", "image-1")]).await;
    assert_eq!(c, "InvalidAMIID.Malformed");
    let (c, _) = err(&env, &alice, "DeregisterImage", &[("ImageId", &ami_b), ("DryRun", "true")]).await;
    assert_eq!(c, "DryRunOperation");
    // Somebody else's (public) template: visible, not deletable.
    let (c, _) = err(&env, &alice, "DeregisterImage", &[("ImageId", &ec2_id(Kind::Image, UBUNTU))]).await;
    assert_eq!(c, "UnauthorizedOperation");
}

#[tokio::test]
async fn image_attributes_and_launch_permissions() {
    let env = start("").await;
    let alice = user(&env, "alice");
    let carol = user(&env, "carol");
    let bob = user(&env, "bob");
    let xml =
        ok(&env, &alice, "RegisterImage", &[("Name", "shared"), ("ImageLocation", "http://images.example/s.qcow2")])
            .await;
    let ami = one(&xml, "imageId");
    wait_image(&env, &alice, &ami).await;
    let attr = |a: &'static str| [("ImageId", ami.clone()), ("Attribute", a.to_string())];
    let describe = |a: &'static str| {
        let p = attr(a);
        let env = &env;
        let alice = &alice;
        async move {
            let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            ok(env, alice, "DescribeImageAttribute", &p).await
        }
    };

    // Fresh: private, shared with nobody.
    let x = describe("launchPermission").await;
    assert_eq!(children(&format!("<x>{x}</x>"), "x"), vec!["imageId", "launchPermission"]);
    assert!(all(&x, "item").is_empty());
    let x = describe("description").await;
    assert_eq!(children(&format!("<x>{x}</x>"), "x"), vec!["imageId", "description"]);
    assert_eq!(one(&x, "value"), "shared");
    // No kernel (nor ramdisk): the element is left out, as EC2 does (issue 12 item 7).
    let x = describe("kernel").await;
    assert_eq!(children(&format!("<x>{x}</x>"), "x"), vec!["imageId"]);
    let x = describe("ramdisk").await;
    assert_eq!(children(&format!("<x>{x}</x>"), "x"), vec!["imageId"]);
    let x = describe("blockDeviceMapping").await;
    assert_eq!(one(&x, "deviceName"), "/dev/sda1");
    // EC2's answer to an attribute name it does not know.
    let (c, m) = err(&env, &alice, "DescribeImageAttribute", &[("ImageId", &ami), ("Attribute", "colour")]).await;
    assert_eq!((c.as_str(), m.as_str()), ("InvalidRequest", "The request received was invalid."));
    let (c, _) = err(&env, &alice, "DescribeImageAttribute", &[("ImageId", &ami)]).await;
    assert_eq!(c, "MissingParameter");

    // Description.
    ok(&env, &alice, "ModifyImageAttribute", &[("ImageId", &ami), ("Description.Value", "new words")]).await;
    assert_eq!(one(&describe("description").await, "value"), "new words");
    ok(&env, &alice, "ModifyImageAttribute", &[("ImageId", &ami), ("Attribute", "description"), ("Value", "flat")])
        .await;
    assert_eq!(one(&describe("description").await, "value"), "flat");

    // Public, and shared with carol; bob (other domain) is refused, nothing changes.
    let (r, calls) = env
        .ex
        .execute_counted(
            &req(
                "ModifyImageAttribute",
                &[
                    ("ImageId", &ami),
                    ("LaunchPermission.Add.1.Group", "all"),
                    ("LaunchPermission.Add.2.UserId", "carol"),
                ],
            ),
            &alice,
        )
        .await;
    r.expect("ModifyImageAttribute");
    eprintln!("ModifyImageAttribute (group all + one account): {calls} backend calls");
    let x = describe("launchPermission").await;
    assert_eq!(all(&x, "group"), vec!["all"]);
    // Carol by her account number, as EC2 names accounts; the number is accepted back.
    let carol_number = ec2bridge::ids::account_number(&env._sim.user("carol").expect("carol").account_id);
    assert_eq!(all(&x, "userId"), vec![carol_number.clone()]);
    let d = ok(&env, &alice, "DescribeImages", &[("ImageId.1", &ami)]).await;
    assert_eq!(one(&d, "isPublic"), "true");
    let (c, _) =
        err(&env, &alice, "ModifyImageAttribute", &[("ImageId", &ami), ("LaunchPermission.Add.1.UserId", "bob")]).await;
    assert_eq!(c, "InvalidAMIAttributeItemValue");
    let (c, _) =
        err(&env, &alice, "ModifyImageAttribute", &[("ImageId", &ami), ("LaunchPermission.Add.1.Group", "admins")])
            .await;
    assert_eq!(c, "InvalidParameterValue");

    // Others see it; they cannot change it.
    let d = ok(&env, &carol, "DescribeImages", &[("ImageId.1", &ami)]).await;
    assert_eq!(one(&d, "imageOwnerId"), alice_number());
    let (c, _) =
        err(&env, &bob, "ModifyImageAttribute", &[("ImageId", &ami), ("LaunchPermission.Remove.1.Group", "all")]).await;
    assert_eq!(c, "UnauthorizedOperation");
    let (c, _) = err(&env, &bob, "ResetImageAttribute", &[("ImageId", &ami), ("Attribute", "launchPermission")]).await;
    assert_eq!(c, "UnauthorizedOperation");

    // Remove (structured form), then the flat form adds carol back; remove group all + a failing
    // account add in one request: the removal is undone.
    ok(&env, &alice, "ModifyImageAttribute", &[("ImageId", &ami), ("LaunchPermission.Remove.1.UserId", &carol_number)])
        .await;
    assert!(all(&describe("launchPermission").await, "userId").is_empty());
    ok(
        &env,
        &alice,
        "ModifyImageAttribute",
        &[("ImageId", &ami), ("Attribute", "launchPermission"), ("OperationType", "add"), ("UserId.1", "carol")],
    )
    .await;
    assert_eq!(all(&describe("launchPermission").await, "userId"), vec![carol_number.clone()]);
    let (c, _) = err(
        &env,
        &alice,
        "ModifyImageAttribute",
        &[("ImageId", &ami), ("LaunchPermission.Remove.1.Group", "all"), ("LaunchPermission.Add.1.UserId", "nobody")],
    )
    .await;
    assert_eq!(c, "InvalidAMIAttributeItemValue");
    assert_eq!(all(&describe("launchPermission").await, "group"), vec!["all"], "the removal was undone");
    let (c, _) = err(
        &env,
        &alice,
        "ModifyImageAttribute",
        &[("ImageId", &ami), ("Attribute", "launchPermission"), ("UserGroup.1", "all")],
    )
    .await;
    assert_eq!(c, "MissingParameter", "OperationType is needed");
    let (c, _) = err(&env, &alice, "ModifyImageAttribute", &[("ImageId", &ami)]).await;
    assert_eq!(c, "MissingParameter");

    // Reset: private, shared with nobody.
    let (c, _) = err(&env, &alice, "ResetImageAttribute", &[("ImageId", &ami), ("Attribute", "description")]).await;
    assert_eq!(c, "InvalidParameterValue");
    ok(&env, &alice, "ResetImageAttribute", &[("ImageId", &ami), ("Attribute", "launchPermission")]).await;
    let x = describe("launchPermission").await;
    assert!(all(&x, "group").is_empty() && all(&x, "userId").is_empty(), "{x}");
    let d = ok(&env, &alice, "DescribeImages", &[("ImageId.1", &ami)]).await;
    assert_eq!(one(&d, "isPublic"), "false");
    let (c, _) = err(&env, &carol, "DescribeImages", &[("ImageId.1", &ami)]).await;
    assert_eq!(c, "InvalidAMIID.NotFound");

    // Describe of a public image one does not own: description yes, permissions no.
    let pub_ami = ec2_id(Kind::Image, UBUNTU);
    let x = ok(&env, &alice, "DescribeImageAttribute", &[("ImageId", &pub_ami), ("Attribute", "description")]).await;
    assert!(!one(&x, "value").is_empty());
    let (c, _) =
        err(&env, &alice, "DescribeImageAttribute", &[("ImageId", &pub_ami), ("Attribute", "launchPermission")]).await;
    assert_eq!(c, "UnauthorizedOperation");

    let before = env.client.calls();
    let _ = describe("launchPermission").await;
    eprintln!("DescribeImageAttribute launchPermission: {} HTTP calls", env.client.calls() - before);
}
