//! Security groups, key pairs and GetPasswordData: the executor over the real CloudStack client
//! against the in-process simulator (fast mode).

mod mapping_support;

use std::time::Duration;

use base64::Engine;
use ec2bridge::auth::Principal;
use ec2bridge::base::Ec2Error;
use ec2bridge::ids::{Kind, ec2_id};
use ec2bridge::mapping::Executor;
use mapping_support::{alice_number, all, one, req, sim_env, sim_principal};

const RSA_PUB: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDguOriAzxINxvyLf9qrepqX6YYT8eNZhywEvdGTF8vHQ2peoK4PhSerKZR4igDR9wpZGxZ7xRYzNdjl0ZGb96gj/QXlckEmvmGnrgMURMuCybdDfS+uSUOjb9w15I2Re3FgYfKtqI24jMvatoUcKtWELCk4wtP9gM8W2KBo/nXiXdY935pSWTTdLS4Y3Uo3/aZg93gYMLomBZRBicQjF2tNhGtGDy3YCIecZBB/HBXQ+8rwsXn7tQ0EFDUPatkdSX6ukBPAHveQxpFXE2yum70ePHZY2vX80XQOFTONp/7MYWCZ1AXh0f8cC0qE52QWv6/NSBzJNX5eZ4/PJCwFI51 test@ec2bridge";
const ED_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF0o2omdWbuViKbXgjB0AQZaDRU9uTtixO4+URFbKdet test2@ec2bridge";
/// MD5 of RSA_PUB's blob (ssh-keygen -l -E md5).
const RSA_FP: &str = "84:71:e4:c8:ac:74:10:31:6d:b6:e2:17:a2:0d:94:30";
const CENTOS_PW: &str = "40b189e5-4b8a-46dd-aff7-974c26626662";

async fn run(ex: &Executor, who: &Principal, action: &str, p: &[(&str, &str)]) -> Result<String, Ec2Error> {
    ex.execute(&req(action, p), who).await
}

async fn code(ex: &Executor, who: &Principal, action: &str, p: &[(&str, &str)]) -> String {
    match run(ex, who, action, p).await {
        Ok(x) => panic!("{action} {p:?} succeeded: {x}"),
        Err(e) => {
            assert!(!e.message.contains("Unable to"), "CloudStack text leaked: {}", e.message);
            e.code.to_string()
        }
    }
}

/// The `<item>`s of securityGroupInfo as (groupName, xml of the item).
fn groups(xml: &str) -> Vec<(String, String)> {
    let wrapped = format!("<r>{xml}</r>");
    let doc = roxmltree::Document::parse(&wrapped).unwrap();
    let info = doc.descendants().find(|n| n.has_tag_name("securityGroupInfo")).expect("securityGroupInfo");
    info.children()
        .filter(|c| c.has_tag_name("item"))
        .map(|it| {
            let name = it.children().find(|c| c.has_tag_name("groupName")).and_then(|c| c.text()).unwrap_or("");
            (name.to_string(), wrapped[it.range()].to_string())
        })
        .collect()
}

/// (ipProtocol, fromPort, toPort, cidrIps, groupIds)
type Perm = (String, String, String, Vec<String>, Vec<String>);

#[tokio::test]
async fn security_group_lifecycle() {
    let (sim, ex, who, client) = sim_env().await;

    // Create, with tags; reserved and duplicate names.
    let xml = run(
        &ex,
        &who,
        "CreateSecurityGroup",
        &[
            ("GroupName", "web"),
            ("GroupDescription", "web servers"),
            ("TagSpecification.1.ResourceType", "security-group"),
            ("TagSpecification.1.Tag.1.Key", "team"),
            ("TagSpecification.1.Tag.1.Value", "blue"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(one(&xml, "return"), "true");
    let web = one(&xml, "groupId");
    assert!(web.starts_with("sg-") && web.len() == 20, "{web}");
    assert_eq!(
        code(&ex, &who, "CreateSecurityGroup", &[("GroupName", "web"), ("GroupDescription", "x")]).await,
        "InvalidGroup.Duplicate"
    );
    assert_eq!(
        code(&ex, &who, "CreateSecurityGroup", &[("GroupName", "default"), ("GroupDescription", "x")]).await,
        "InvalidGroup.Reserved"
    );
    assert_eq!(code(&ex, &who, "CreateSecurityGroup", &[("GroupName", "x")]).await, "MissingParameter");
    assert_eq!(
        code(&ex, &who, "CreateSecurityGroup", &[("GroupName", "y"), ("GroupDescription", "y"), ("DryRun", "true")])
            .await,
        "DryRunOperation"
    );
    let xml =
        run(&ex, &who, "CreateSecurityGroup", &[("GroupName", "db"), ("GroupDescription", "databases")]).await.unwrap();
    let db = one(&xml, "groupId");

    // Describe: ids and names in one call, one backend call.
    let before = client.calls();
    let xml = run(&ex, &who, "DescribeSecurityGroups", &[("GroupId.1", &web), ("GroupName.1", "db")]).await.unwrap();
    let listed: Vec<String> = groups(&xml).into_iter().map(|(n, _)| n).collect();
    assert_eq!(client.calls() - before, 1, "one list call");
    let mut listed = listed;
    listed.sort();
    assert_eq!(listed, vec!["db", "web"], "ids and names select together");
    let xml = run(&ex, &who, "DescribeSecurityGroups", &[("GroupId.1", &web), ("GroupId.2", &db)]).await.unwrap();
    let mut names: Vec<String> = groups(&xml).into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(names, vec!["db", "web"]);
    let xml = run(&ex, &who, "DescribeSecurityGroups", &[("GroupName.1", "web")]).await.unwrap();
    assert_eq!(all(&xml, "groupId"), vec![web.clone()]);
    assert_eq!(one(&xml, "groupDescription"), "web servers");
    assert_eq!(one(&xml, "ownerId"), alice_number());
    assert_eq!(all(&xml, "key"), vec!["team"]);
    assert_eq!(code(&ex, &who, "DescribeSecurityGroups", &[("GroupName.1", "nope")]).await, "InvalidGroup.NotFound");
    assert_eq!(
        code(&ex, &who, "DescribeSecurityGroups", &[("GroupId.1", "sg-12345678")]).await,
        "InvalidGroup.NotFound"
    );
    assert_eq!(code(&ex, &who, "DescribeSecurityGroups", &[("GroupId.1", "sg-zz")]).await, "InvalidGroupId.Malformed");

    // Authorize: two permissions (one with two CIDRs and a group), then the old flat form.
    let xml = run(
        &ex,
        &who,
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupId", &web),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "80"),
            ("IpPermissions.1.ToPort", "443"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
            ("IpPermissions.1.IpRanges.2.CidrIp", "192.168.0.0/16"),
            ("IpPermissions.1.Groups.1.GroupId", &db),
            ("IpPermissions.2.IpProtocol", "icmp"),
            ("IpPermissions.2.FromPort", "8"),
            ("IpPermissions.2.ToPort", "-1"),
            ("IpPermissions.2.IpRanges.1.CidrIp", "0.0.0.0/0"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(one(&xml, "return"), "true");
    run(
        &ex,
        &who,
        "AuthorizeSecurityGroupIngress",
        &[("GroupName", "web"), ("IpProtocol", "udp"), ("FromPort", "53"), ("ToPort", "53"), ("CidrIp", "10.1.0.0/16")],
    )
    .await
    .unwrap();
    // A group outside a VPC (EC2-Classic) has no egress rules.
    let e = run(
        &ex,
        &who,
        "AuthorizeSecurityGroupEgress",
        &[("GroupId", &web), ("IpPermissions.1.IpProtocol", "-1"), ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0")],
    )
    .await
    .unwrap_err();
    assert_eq!(
        (e.code.as_ref(), e.message.as_str()),
        ("InvalidParameterValue", "Only Amazon VPC security groups may be used with this operation.")
    );
    let xml = run(&ex, &who, "DescribeSecurityGroups", &[("GroupId.1", &web)]).await.unwrap();
    let g = &groups(&xml)[0].1;
    let wrapped = roxmltree::Document::parse(g).unwrap();
    let perms = |set: &str| -> Vec<Perm> {
        let n = wrapped.descendants().find(|n| n.has_tag_name(set)).unwrap();
        n.children()
            .filter(|c| c.has_tag_name("item"))
            .map(|it| {
                let t = |k: &str| {
                    it.children().find(|c| c.has_tag_name(k)).and_then(|c| c.text()).unwrap_or("").to_string()
                };
                let sub = |k: &str, f: &str| -> Vec<String> {
                    it.children()
                        .find(|c| c.has_tag_name(k))
                        .map(|l| {
                            l.descendants()
                                .filter(|d| d.has_tag_name(f))
                                .map(|d| d.text().unwrap_or("").to_string())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                (t("ipProtocol"), t("fromPort"), t("toPort"), sub("ipRanges", "cidrIp"), sub("groups", "groupId"))
            })
            .collect()
    };
    let ing = perms("ipPermissions");
    assert!(
        ing.contains(&(
            "tcp".into(),
            "80".into(),
            "443".into(),
            vec!["10.0.0.0/8".into(), "192.168.0.0/16".into()],
            vec![db.clone()]
        )),
        "{ing:?}"
    );
    assert!(ing.contains(&("icmp".into(), "8".into(), "-1".into(), vec!["0.0.0.0/0".into()], vec![])), "{ing:?}");
    assert!(ing.contains(&("udp".into(), "53".into(), "53".into(), vec!["10.1.0.0/16".into()], vec![])), "{ing:?}");
    assert_eq!(ing.len(), 3);
    let eg = perms("ipPermissionsEgress");
    assert_eq!(eg, vec![]);

    // Filters over the permissions.
    let f = |n: &'static str, v: &'static str| [("Filter.1.Name", n), ("Filter.1.Value.1", v)];
    let alice_num: &'static str = Box::leak(alice_number().into_boxed_str());
    for (n, v, want) in [
        ("ip-permission.from-port", "80", vec!["web"]),
        ("ip-permission.cidr", "192.168.*", vec!["web"]),
        ("ip-permission.protocol", "udp", vec!["web"]),
        ("ip-permission.group-name", "db", vec!["web"]),
        ("ip-permission.to-port", "9999", vec![]),
        ("group-name", "d?", vec!["db"]),
        ("description", "web servers", vec!["web"]),
        ("tag:team", "blue", vec!["web"]),
        ("tag-key", "team", vec!["web"]),
        ("owner-id", alice_num, vec!["db", "default", "web"]),
    ] {
        let xml = run(&ex, &who, "DescribeSecurityGroups", &f(n, v)).await.unwrap();
        let mut got: Vec<String> = groups(&xml).into_iter().map(|(n, _)| n).collect();
        got.sort();
        assert_eq!(got, want, "filter {n}={v}");
    }
    assert_eq!(code(&ex, &who, "DescribeSecurityGroups", &f("bogus", "1")).await, "InvalidParameterValue");
    // Paging.
    let xml = run(&ex, &who, "DescribeSecurityGroups", &[("MaxResults", "5")]).await.unwrap();
    assert_eq!(groups(&xml).len(), 3);
    assert_eq!(code(&ex, &who, "DescribeSecurityGroups", &[("MaxResults", "4")]).await, "InvalidParameterValue");

    // Errors: duplicate rule, bad ports, bad CIDR, unknown group, no source.
    let dup = [
        ("GroupId", web.as_str()),
        ("IpProtocol", "udp"),
        ("FromPort", "53"),
        ("ToPort", "53"),
        ("CidrIp", "10.1.0.0/16"),
    ];
    assert_eq!(code(&ex, &who, "AuthorizeSecurityGroupIngress", &dup).await, "InvalidPermission.Duplicate");
    let bad = [
        ("GroupId", web.as_str()),
        ("IpProtocol", "tcp"),
        ("FromPort", "90"),
        ("ToPort", "70000"),
        ("CidrIp", "1.2.3.0/24"),
    ];
    assert_eq!(code(&ex, &who, "AuthorizeSecurityGroupIngress", &bad).await, "InvalidPermission.Malformed");
    let bad = [
        ("GroupId", web.as_str()),
        ("IpProtocol", "tcp"),
        ("FromPort", "22"),
        ("ToPort", "22"),
        ("CidrIp", "1.2.3.0/33"),
    ];
    assert_eq!(code(&ex, &who, "AuthorizeSecurityGroupIngress", &bad).await, "InvalidParameterValue");
    let bad = [("GroupId", web.as_str()), ("IpProtocol", "gre?"), ("CidrIp", "1.2.3.0/24")];
    assert_eq!(code(&ex, &who, "AuthorizeSecurityGroupIngress", &bad).await, "InvalidParameterValue");
    let bad =
        [("GroupName", "nope"), ("IpProtocol", "tcp"), ("FromPort", "22"), ("ToPort", "22"), ("CidrIp", "1.2.3.0/24")];
    assert_eq!(code(&ex, &who, "AuthorizeSecurityGroupIngress", &bad).await, "InvalidGroup.NotFound");
    let bad = [
        ("GroupId", web.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "22"),
        ("IpPermissions.1.ToPort", "22"),
    ];
    assert_eq!(code(&ex, &who, "AuthorizeSecurityGroupIngress", &bad).await, "MissingParameter");

    // A failing second permission undoes the first.
    let count_rules = |xml: &str| all(xml, "cidrIp").len() + all(xml, "groupName").len();
    let xml = run(&ex, &who, "DescribeSecurityGroups", &[("GroupId.1", &db)]).await.unwrap();
    let rules_before = count_rules(&xml);
    let e = run(
        &ex,
        &who,
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupId", &db),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "5432"),
            ("IpPermissions.1.ToPort", "5432"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
            ("IpPermissions.2.IpProtocol", "tcp"),
            ("IpPermissions.2.FromPort", "5433"),
            ("IpPermissions.2.ToPort", "5433"),
            ("IpPermissions.2.Groups.1.UserId", "nosuchaccount"),
            ("IpPermissions.2.Groups.1.GroupName", "nosuchgroup"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue", "{e:?}");
    let xml = run(&ex, &who, "DescribeSecurityGroups", &[("GroupId.1", &db)]).await.unwrap();
    assert_eq!(count_rules(&xml), rules_before, "first permission revoked again: {xml}");

    // Revoke: match by protocol/ports/source; unknown -> NotFound.
    run(
        &ex,
        &who,
        "RevokeSecurityGroupIngress",
        &[
            ("GroupId", &web),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "80"),
            ("IpPermissions.1.ToPort", "443"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
            ("IpPermissions.1.Groups.1.GroupName", "db"),
        ],
    )
    .await
    .unwrap();
    let gone = [
        ("GroupId", web.as_str()),
        ("IpProtocol", "tcp"),
        ("FromPort", "80"),
        ("ToPort", "443"),
        ("CidrIp", "10.0.0.0/8"),
    ];
    // EC2-Classic: revoking a rule that is not there succeeds.
    run(&ex, &who, "RevokeSecurityGroupIngress", &gone).await.unwrap();
    let e = run(
        &ex,
        &who,
        "RevokeSecurityGroupEgress",
        &[("GroupId", &web), ("IpPermissions.1.IpProtocol", "-1"), ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0")],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let xml = run(&ex, &who, "DescribeSecurityGroups", &[("GroupId.1", &web)]).await.unwrap();
    let mut cidrs = all(&xml, "cidrIp");
    cidrs.sort();
    assert_eq!(cidrs, vec!["0.0.0.0/0", "10.1.0.0/16", "192.168.0.0/16"]);
    assert!(!xml.contains("10.0.0.0/8") && !xml.contains("<groupName>db</groupName>"), "{xml}");

    // Delete: in use by a VM, referenced by a rule, default, then by id and by name.
    let ami = ec2_id(Kind::Image, CENTOS_PW);
    let xml = run(
        &ex,
        &who,
        "RunInstances",
        &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("SecurityGroupId.1", &db)],
    )
    .await
    .unwrap();
    let inst = one(&xml, "instanceId");
    assert_eq!(code(&ex, &who, "DeleteSecurityGroup", &[("GroupId", &db)]).await, "DependencyViolation");
    assert_eq!(code(&ex, &who, "DeleteSecurityGroup", &[("GroupName", "default")]).await, "CannotDelete");
    assert_eq!(code(&ex, &who, "DeleteSecurityGroup", &[]).await, "MissingParameter");
    assert_eq!(code(&ex, &who, "DeleteSecurityGroup", &[("GroupName", "nope")]).await, "InvalidGroup.NotFound");
    let xml = run(&ex, &who, "DeleteSecurityGroup", &[("GroupName", "web")]).await.unwrap();
    assert_eq!(one(&xml, "return"), "true");
    assert_eq!(code(&ex, &who, "DescribeSecurityGroups", &[("GroupId.1", &web)]).await, "InvalidGroup.NotFound");
    let _ = inst;
    // Another account sees none of alice's groups.
    let bob = sim_principal(&sim, "bob");
    assert_eq!(code(&ex, &bob, "DescribeSecurityGroups", &[("GroupId.1", &db)]).await, "InvalidGroup.NotFound");
}

#[tokio::test]
async fn key_pairs_and_password_data() {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let (_sim, ex, who, client) = sim_env().await;

    let xml = run(&ex, &who, "CreateKeyPair", &[("KeyName", "k1")]).await.unwrap();
    assert_eq!(one(&xml, "keyName"), "k1");
    let pem = one(&xml, "keyMaterial");
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{pem}");
    let k1_id = one(&xml, "keyPairId");
    assert!(k1_id.starts_with("key-"));
    assert_eq!(one(&xml, "keyFingerprint").len(), 47);
    // CreateKeyPair is data (mappings/keypairs.toml): createSSHKeyPair's 431 is the taken name, the
    // message names it; a blank name (CloudStack's other 431) and a key type or format this
    // cloud cannot make are refused before the call.
    let e = run(&ex, &who, "CreateKeyPair", &[("KeyName", "k1")]).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.message.as_str()), ("InvalidKeyPair.Duplicate", "The keypair 'k1' already exists."));
    let before = client.calls();
    for (p, v) in [("KeyName", " "), ("KeyName", "a\tb"), ("KeyType", "ed25519"), ("KeyFormat", "ppk")] {
        let mut req = vec![(p, v)];
        if p != "KeyName" {
            req.push(("KeyName", "k9"));
        }
        assert_eq!(code(&ex, &who, "CreateKeyPair", &req).await, "InvalidParameterValue", "{p}={v:?}");
    }
    let long = "k".repeat(256);
    assert_eq!(code(&ex, &who, "CreateKeyPair", &[("KeyName", &long)]).await, "InvalidParameterValue");
    assert_eq!(client.calls(), before, "a refused CreateKeyPair calls nothing");
    let xml = run(&ex, &who, "CreateKeyPair", &[("KeyName", "k2"), ("KeyType", "rsa"), ("KeyFormat", "pem")]).await;
    assert_eq!(one(&xml.unwrap(), "keyName"), "k2");
    run(&ex, &who, "DeleteKeyPair", &[("KeyName", "k2")]).await.unwrap();
    assert_eq!(code(&ex, &who, "CreateKeyPair", &[("KeyName", "k9"), ("DryRun", "true")]).await, "DryRunOperation");

    // Import: base64 of the OpenSSH line.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let xml =
        run(&ex, &who, "ImportKeyPair", &[("KeyName", "imp"), ("PublicKeyMaterial", &b64(RSA_PUB))]).await.unwrap();
    assert_eq!(one(&xml, "keyFingerprint"), RSA_FP);
    let xml = run(&ex, &who, "ImportKeyPair", &[("KeyName", "ed"), ("PublicKeyMaterial", &b64(ED_PUB))]).await.unwrap();
    assert_eq!(one(&xml, "keyName"), "ed");
    assert_eq!(
        code(&ex, &who, "ImportKeyPair", &[("KeyName", "imp"), ("PublicKeyMaterial", &b64(ED_PUB))]).await,
        "InvalidKeyPair.Duplicate"
    );
    assert_eq!(
        code(&ex, &who, "ImportKeyPair", &[("KeyName", "bad"), ("PublicKeyMaterial", &b64("ssh-rsa AAAAnotakey"))])
            .await,
        "InvalidKeyPair.Format"
    );
    assert_eq!(
        code(&ex, &who, "ImportKeyPair", &[("KeyName", "bad"), ("PublicKeyMaterial", "!!!")]).await,
        "InvalidKeyPair.Format"
    );

    // Describe: names, ids, filters; unknown name names it in single quotes.
    let before = client.calls();
    let xml = run(&ex, &who, "DescribeKeyPairs", &[]).await.unwrap();
    assert_eq!(client.calls() - before, 1);
    let mut names = all(&xml, "keyName");
    names.sort();
    assert_eq!(names, vec!["ed", "imp", "k1"]);
    let xml = run(&ex, &who, "DescribeKeyPairs", &[("KeyName.1", "imp"), ("KeyName.2", "k1")]).await.unwrap();
    assert_eq!(all(&xml, "keyName").len(), 2);
    let xml = run(&ex, &who, "DescribeKeyPairs", &[("KeyPairId.1", &k1_id)]).await.unwrap();
    assert_eq!(all(&xml, "keyName"), vec!["k1"]);
    let xml = run(&ex, &who, "DescribeKeyPairs", &[("Filter.1.Name", "fingerprint"), ("Filter.1.Value.1", RSA_FP)])
        .await
        .unwrap();
    assert_eq!(all(&xml, "keyName"), vec!["imp"]);
    let xml =
        run(&ex, &who, "DescribeKeyPairs", &[("Filter.1.Name", "key-name"), ("Filter.1.Value.1", "k*")]).await.unwrap();
    assert_eq!(all(&xml, "keyName"), vec!["k1"]);
    let xml =
        run(&ex, &who, "DescribeKeyPairs", &[("Filter.1.Name", "tag:x"), ("Filter.1.Value.1", "*")]).await.unwrap();
    assert!(all(&xml, "keyName").is_empty());
    let e = run(&ex, &who, "DescribeKeyPairs", &[("KeyName.1", "ghost")]).await.unwrap_err();
    assert_eq!(
        (e.code.as_ref(), e.message.as_str()),
        ("InvalidKeyPair.NotFound", "The key pair 'ghost' does not exist")
    );
    assert_eq!(
        code(&ex, &who, "DescribeKeyPairs", &[("KeyPairId.1", "key-0123456789abcdef0")]).await,
        "InvalidKeyPair.NotFound"
    );
    assert_eq!(
        code(
            &ex,
            &who,
            "CreateKeyPair",
            &[("KeyName", "t"), ("TagSpecification.1.ResourceType", "key-pair"), ("TagSpecification.1.Tag.1.Key", "a")]
        )
        .await,
        "UnsupportedOperation"
    );

    // GetPasswordData: a VM from the password template with k1; decrypt with k1's private key.
    let ami = ec2_id(Kind::Image, CENTOS_PW);
    let xml =
        run(&ex, &who, "RunInstances", &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("KeyName", "k1")])
            .await
            .unwrap();
    let inst = one(&xml, "instanceId");
    let mut data = String::new();
    for _ in 0..400 {
        let xml = run(&ex, &who, "GetPasswordData", &[("InstanceId", &inst)]).await.unwrap();
        assert_eq!(one(&xml, "instanceId"), inst);
        assert!(one(&xml, "timestamp").ends_with('Z'));
        data = all(&xml, "passwordData").into_iter().next().unwrap_or_default();
        if !data.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!data.is_empty(), "password never became available");
    let ct = base64::engine::general_purpose::STANDARD.decode(&data).unwrap();
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap();
    let clear = key.decrypt(rsa::Pkcs1v15Encrypt, &ct).unwrap();
    assert!(clear.len() >= 6 && clear.iter().all(|b| b.is_ascii_graphic()), "{clear:?}");
    // No key pair -> no password: empty, not an error.
    let xml = run(&ex, &who, "RunInstances", &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1")]).await.unwrap();
    let plain = one(&xml, "instanceId");
    let xml = run(&ex, &who, "GetPasswordData", &[("InstanceId", &plain)]).await.unwrap();
    assert_eq!(all(&xml, "passwordData"), vec![""]);
    assert_eq!(code(&ex, &who, "GetPasswordData", &[]).await, "MissingParameter");
    assert_eq!(
        code(&ex, &who, "GetPasswordData", &[("InstanceId", "i-0123456789abcdef0")]).await,
        "InvalidInstanceID.NotFound"
    );

    // Delete: by name, by id, absent is success.
    for p in [
        [("KeyName", "imp")],
        [("KeyPairId", k1_id.as_str())],
        [("KeyName", "never-there")],
        [("KeyPairId", "key-0123456789abcdef0")],
    ] {
        let xml = run(&ex, &who, "DeleteKeyPair", &p).await.unwrap();
        assert_eq!(one(&xml, "return"), "true");
    }
    assert_eq!(code(&ex, &who, "DeleteKeyPair", &[]).await, "MissingParameter");
    assert_eq!(code(&ex, &who, "DeleteKeyPair", &[("KeyPairId", "bogus")]).await, "InvalidParameterValue");
    let xml = run(&ex, &who, "DescribeKeyPairs", &[]).await.unwrap();
    assert_eq!(all(&xml, "keyName"), vec!["ed"]);
    // A deleted key is not offered to RunInstances from a stale cache.
    assert_eq!(
        code(&ex, &who, "RunInstances", &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("KeyName", "imp")])
            .await,
        "InvalidKeyPair.NotFound"
    );
}
