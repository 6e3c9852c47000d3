//! Executor tests against canned CloudStack answers (no network).

mod mapping_support;

use ec2bridge::cloudstack::CsError;
use ec2bridge::ids::{Kind, ec2_id};
use mapping_support::*;

#[tokio::test]
async fn unknown_and_unsupported_actions() {
    let (_, ex) = setup();
    let e = ex.execute(&req("FooBar", &[]), &who()).await.unwrap_err();
    assert_eq!(e.code, "InvalidAction");
    assert_eq!(e.message, "The action FooBar is not valid for this web service.");
    let e = ex.execute(&req("DescribeTransitGateways", &[]), &who()).await.unwrap_err();
    assert_eq!(e.code, "UnsupportedOperation");
    assert!(e.message.contains("DescribeTransitGateways"));
}

#[tokio::test]
async fn availability_zones_and_regions() {
    let (cs, ex) = setup();
    let xml = ex.execute(&req("DescribeAvailabilityZones", &[]), &who()).await.unwrap();
    assert_eq!(all(&xml, "zoneName"), vec!["zone1", "zone2"]);
    assert_eq!(all(&xml, "regionName"), vec!["us-east-1", "us-east-1"]);
    assert_eq!(children(&xml, "item"), vec!["zoneName", "zoneState", "regionName", "messageSet", "zoneId", "zoneType"]);
    // Older API versions get the older shape (WSDL 2013-10-01 has no zoneId).
    let mut old = req("DescribeAvailabilityZones", &[]);
    old.version = "2012-08-15".into();
    let xml_old = ex.execute(&old, &who()).await.unwrap();
    assert_eq!(children(&xml_old, "item"), vec!["zoneName", "zoneState", "regionName", "messageSet"]);
    assert_eq!(one(&xml, "zoneState"), "available");
    // Cached: a second request makes no backend call.
    let (r, calls) = ex.execute_counted(&req("DescribeAvailabilityZones", &[("ZoneName.1", "zone2")]), &who()).await;
    assert_eq!(calls, 0);
    assert_eq!(all(&r.unwrap(), "zoneName"), vec!["zone2"]);
    assert_eq!(cs.commands(), vec!["listZones"]);
    let xml = ex
        .execute(
            &req("DescribeAvailabilityZones", &[("Filter.1.Name", "zone-name"), ("Filter.1.Value.1", "*1")]),
            &who(),
        )
        .await
        .unwrap();
    assert_eq!(all(&xml, "zoneName"), vec!["zone1"]);
    let e = ex
        .execute(&req("DescribeAvailabilityZones", &[("Filter.1.Name", "bogus"), ("Filter.1.Value.1", "x")]), &who())
        .await
        .unwrap_err();
    assert_eq!((e.code.as_ref(), e.message.as_str()), ("InvalidParameterValue", "The filter 'bogus' is invalid"));

    // A bare list parameter is its one value (libcloud sends `KeyName=` for DescribeKeyPairs).
    let xml = ex.execute(&req("DescribeAvailabilityZones", &[("ZoneName", "zone1")]), &who()).await.unwrap();
    assert_eq!(all(&xml, "zoneName"), vec!["zone1"]);

    let xml = ex.execute(&req("DescribeRegions", &[]), &who()).await.unwrap();
    assert_eq!(
        xml,
        "<regionInfo><item><regionName>us-east-1</regionName><regionEndpoint>127.0.0.1:7080</regionEndpoint></item></regionInfo>"
    );
    // The host the client addressed wins over the configured endpoint, also for the endpoint filter.
    let mut r = req("DescribeRegions", &[]);
    r.host = Some("gw.example:8788".into());
    let xml = ex.execute(&r, &who()).await.unwrap();
    assert_eq!(all(&xml, "regionEndpoint"), vec!["gw.example:8788"]);
    let mut r = req("DescribeRegions", &[("Filter.1.Name", "endpoint"), ("Filter.1.Value.1", "gw.example:8788")]);
    r.host = Some("gw.example:8788".into());
    assert_eq!(all(&ex.execute(&r, &who()).await.unwrap(), "regionName"), vec!["us-east-1"]);
    let xml = ex.execute(&req("DescribeRegions", &[("RegionName.1", "nowhere")]), &who()).await.unwrap();
    assert_eq!(xml, "<regionInfo/>");
}

#[tokio::test]
async fn account_attributes() {
    let (_, ex) = setup();
    let xml = ex.execute(&req("DescribeAccountAttributes", &[]), &who()).await.unwrap();
    assert_eq!(all(&xml, "attributeName")[..3], ["supported-platforms", "default-vpc", "max-instances"]);
    let xml = ex
        .execute(&req("DescribeAccountAttributes", &[("AttributeName.1", "supported-platforms")]), &who())
        .await
        .unwrap();
    assert_eq!(all(&xml, "attributeValue"), vec!["EC2", "VPC"]);
    let xml =
        ex.execute(&req("DescribeAccountAttributes", &[("AttributeName.1", "max-instances")]), &who()).await.unwrap();
    assert_eq!(all(&xml, "attributeValue"), vec!["20"]);
    let e = ex.execute(&req("DescribeAccountAttributes", &[("AttributeName.1", "nope")]), &who()).await.unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
}

#[tokio::test]
async fn describe_images() {
    let (cs, ex) = setup();
    let ubuntu = ec2_id(Kind::Image, TPL_UBUNTU);
    let mine = ec2_id(Kind::Image, TPL_MINE);
    let pending = ec2_id(Kind::Image, TPL_PENDING);
    let xml = ex.execute(&req("DescribeImages", &[]), &who()).await.unwrap();
    // One row per template (the per-zone duplicate is gone), own images first.
    assert_eq!(all(&xml, "imageId"), vec![mine.clone(), pending.clone(), ubuntu.clone()]);
    assert_eq!(all(&xml, "imageState"), vec!["available", "pending", "available"]);
    assert_eq!(all(&xml, "architecture"), vec!["i386", "x86_64", "x86_64"]);
    assert_eq!(all(&xml, "imageOwnerAlias"), vec!["amazon"]);
    assert_eq!(all(&xml, "volumeSize"), vec!["2", "10"]);
    assert_eq!(all(&xml, "creationDate")[0], "2024-02-02T04:04:05.000Z");
    let first = children(&xml, "item");
    assert_eq!(first[..6], ["imageId", "imageLocation", "imageState", "imageOwnerId", "isPublic", "architecture"]);
    assert_eq!(cs.commands(), vec!["listTemplates"; 3]);

    cs.clear_calls();
    let xml = ex.execute(&req("DescribeImages", &[("Owner.1", "self")]), &who()).await.unwrap();
    assert_eq!(all(&xml, "imageId"), vec![mine.clone(), pending.clone()]);
    assert_eq!(cs.calls().len(), 1);
    assert_eq!(cs.calls()[0].1, vec![("templatefilter".to_string(), "self".to_string())]);
    let xml = ex.execute(&req("DescribeImages", &[("Owner.1", "amazon")]), &who()).await.unwrap();
    assert_eq!(all(&xml, "imageId"), vec![ubuntu.clone()]);
    let xml = ex.execute(&req("DescribeImages", &[("ExecutableBy.1", "all")]), &who()).await.unwrap();
    assert_eq!(all(&xml, "imageId"), vec![ubuntu.clone()]);

    // Ids, filters, tags.
    let xml = ex.execute(&req("DescribeImages", &[("ImageId.1", &ubuntu)]), &who()).await.unwrap();
    assert_eq!(all(&xml, "imageId"), vec![ubuntu.clone()]);
    let xml = ex
        .execute(&req("DescribeImages", &[("Filter.1.Name", "tag:team"), ("Filter.1.Value.1", "w?b")]), &who())
        .await
        .unwrap();
    assert_eq!(all(&xml, "imageId"), vec![mine.clone()]);
    assert_eq!(all(&xml, "key"), vec!["team"]);
    let xml = ex
        .execute(
            &req(
                "DescribeImages",
                &[("Filter.1.Name", "state"), ("Filter.1.Value.1", "pending"), ("Filter.1.Value.2", "failed")],
            ),
            &who(),
        )
        .await
        .unwrap();
    assert_eq!(all(&xml, "imageId"), vec![pending.clone()]);

    let e = ex.execute(&req("DescribeImages", &[("ImageId.1", "ami-00000000")]), &who()).await.unwrap_err();
    assert_eq!(
        (e.code.as_ref(), e.message.as_str()),
        ("InvalidAMIID.NotFound", "The image id '[ami-00000000]' does not exist")
    );
    let e = ex.execute(&req("DescribeImages", &[("ImageId.1", "i-12345678")]), &who()).await.unwrap_err();
    assert_eq!(e.code, "InvalidAMIID.Malformed");
}

#[tokio::test]
async fn describe_instances_ids_filters_paging() {
    let (cs, ex) = setup();
    let a = cs.add_vm(
        "a",
        "Running",
        serde_json::json!({"tags": [{"key": "Name", "value": "web-1"}], "publicip": "1.2.3.4"}),
    );
    let b = cs.add_vm("b", "Stopped", serde_json::json!({}));
    for i in 0..10 {
        cs.add_vm(&format!("n{i}"), "Running", serde_json::json!({}));
    }
    let ia = ec2_id(Kind::Instance, &a);
    let ib = ec2_id(Kind::Instance, &b);
    let xml = ex.execute(&req("DescribeInstances", &[]), &who()).await.unwrap();
    assert_eq!(all(&xml, "instanceId").len(), 12);
    // Every VM is its own reservation here (no deploy batch).
    assert_eq!(all(&xml, "reservationId").len(), 12);
    let inst = children(&xml, "instancesSet");
    assert_eq!(inst, vec!["item"]);
    let item_fields = {
        let wrapped = format!("<r>{xml}</r>");
        let doc = roxmltree::Document::parse(&wrapped).unwrap();
        let it = doc.descendants().find(|n| n.has_tag_name("instancesSet")).unwrap().first_element_child().unwrap();
        it.children().filter(|c| c.is_element()).map(|c| c.tag_name().name().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        item_fields,
        vec![
            "instanceId",
            "imageId",
            "instanceState",
            "privateDnsName",
            "dnsName",
            "keyName",
            "amiLaunchIndex",
            "instanceType",
            "launchTime",
            "placement",
            "monitoring",
            "privateIpAddress",
            "ipAddress",
            "groupSet",
            "architecture",
            "rootDeviceType",
            "rootDeviceName",
            "blockDeviceMapping",
            "virtualizationType",
            "tagSet",
            "hypervisor",
            "platformDetails",
            "usageOperation"
        ]
    );
    assert_eq!(one(&xml, "launchTime"), "2024-05-06T05:08:09.000Z");
    assert_eq!(one(&xml, "ipAddress"), "1.2.3.4");
    assert_eq!(one(&xml, "groupId"), ec2_id(Kind::SecurityGroup, SG_DEFAULT));

    // Many ids -> one list call with ids=...
    cs.clear_calls();
    let xml =
        ex.execute(&req("DescribeInstances", &[("InstanceId.1", &ia), ("InstanceId.2", &ib)]), &who()).await.unwrap();
    assert_eq!(all(&xml, "instanceId"), vec![ia.clone(), ib.clone()]);
    assert_eq!(all(&xml, "name"), vec!["running", "stopped"]);
    assert_eq!(all(&xml, "code"), vec!["16", "80"]);
    let calls = cs.calls();
    // One list call for the instances, one for every instance's block devices.
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0, "listVirtualMachines");
    assert!(calls[0].1.contains(&("ids".to_string(), format!("{a},{b}"))));
    assert_eq!(calls[1].0, "listVolumes");

    // Filters: values OR-ed, filters AND-ed, tags.
    let xml = ex
        .execute(
            &req(
                "DescribeInstances",
                &[
                    ("Filter.1.Name", "instance-state-name"),
                    ("Filter.1.Value.1", "running"),
                    ("Filter.1.Value.2", "stopped"),
                    ("Filter.2.Name", "tag:Name"),
                    ("Filter.2.Value.1", "web-*"),
                ],
            ),
            &who(),
        )
        .await
        .unwrap();
    assert_eq!(all(&xml, "instanceId"), vec![ia.clone()]);
    let xml = ex
        .execute(
            &req("DescribeInstances", &[("Filter.1.Name", "instance-state-code"), ("Filter.1.Value.1", "80")]),
            &who(),
        )
        .await
        .unwrap();
    assert_eq!(all(&xml, "instanceId"), vec![ib.clone()]);
    let xml = ex
        .execute(&req("DescribeInstances", &[("Filter.1.Name", "tag-key"), ("Filter.1.Value.1", "Name")]), &who())
        .await
        .unwrap();
    assert_eq!(all(&xml, "instanceId"), vec![ia.clone()]);

    // Paging.
    let xml = ex.execute(&req("DescribeInstances", &[("MaxResults", "5")]), &who()).await.unwrap();
    assert_eq!(all(&xml, "instanceId").len(), 5);
    let tok = one(&xml, "nextToken");
    let xml =
        ex.execute(&req("DescribeInstances", &[("MaxResults", "10"), ("NextToken", &tok)]), &who()).await.unwrap();
    assert_eq!(all(&xml, "instanceId").len(), 7);
    assert!(all(&xml, "nextToken").is_empty());
    let e =
        ex.execute(&req("DescribeInstances", &[("MaxResults", "5"), ("InstanceId.1", &ia)]), &who()).await.unwrap_err();
    assert_eq!(e.code, "InvalidParameterCombination");
    // Above EC2's maximum: at most the maximum, as EC2 answers; below its minimum: an error.
    let xml = ex.execute(&req("DescribeInstances", &[("MaxResults", "1001")]), &who()).await.unwrap();
    assert_eq!(all(&xml, "instanceId").len(), 12);
    let e = ex.execute(&req("DescribeInstances", &[("MaxResults", "4")]), &who()).await.unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");

    // Ids: malformed, unknown.
    let e = ex.execute(&req("DescribeInstances", &[("InstanceId.1", "i-xyz")]), &who()).await.unwrap_err();
    assert_eq!(
        (e.code.as_ref(), e.message.as_str()),
        ("InvalidInstanceID.Malformed", "Invalid id: \"i-xyz\" (expecting \"i-...\")")
    );
    let e = ex
        .execute(
            &req("DescribeInstances", &[("InstanceId.1", "i-0123456789abcdef0"), ("InstanceId.2", "i-11111111")]),
            &who(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidInstanceID.NotFound");
    assert_eq!(e.message, "The instance IDs 'i-0123456789abcdef0, i-11111111' do not exist");
}

#[tokio::test]
async fn id_cache_is_rebuilt_by_listing() {
    let (cs, ex) = setup();
    let a = cs.add_vm("a", "Running", serde_json::json!({}));
    let ia = ec2_id(Kind::Instance, &a);
    // Never rendered by this gateway: the first lookup lists the caller's VMs once.
    let (r, calls) = ex.execute_counted(&req("DescribeInstances", &[("InstanceId.1", &ia)]), &who()).await;
    assert_eq!(all(&r.unwrap(), "instanceId"), vec![ia.clone()]);
    // The listing for the cache, the list itself, one listVolumes for the block devices.
    assert_eq!(calls, 3);
    let (_, calls) = ex.execute_counted(&req("DescribeInstances", &[("InstanceId.1", &ia)]), &who()).await;
    assert_eq!(calls, 2);
}

#[tokio::test]
async fn run_instances_answers_pending_at_once() {
    let (cs, ex) = setup();
    let ami = ec2_id(Kind::Image, TPL_UBUNTU);
    ex.execute(&req("DescribeImages", &[]), &who()).await.unwrap();
    ex.execute(&req("DescribeAvailabilityZones", &[]), &who()).await.unwrap();
    cs.clear_calls();
    let (r, calls) = ex
        .execute_counted(
            &req(
                "RunInstances",
                &[
                    ("ImageId", &ami),
                    ("MinCount", "1"),
                    ("MaxCount", "3"),
                    ("InstanceType", "m1.large"),
                    ("KeyName", "k1"),
                    ("Placement.AvailabilityZone", "zone1"),
                    ("UserData", "aGVsbG8="),
                    ("TagSpecification.1.ResourceType", "instance"),
                    ("TagSpecification.1.Tag.1.Key", "Name"),
                    ("TagSpecification.1.Tag.1.Value", "web"),
                ],
            ),
            &who(),
        )
        .await;
    let xml = r.unwrap();
    let top: Vec<String> = {
        let wrapped = format!("<r>{xml}</r>");
        let doc = roxmltree::Document::parse(&wrapped).unwrap();
        doc.root_element().children().filter(|c| c.is_element()).map(|c| c.tag_name().name().to_string()).collect()
    };
    assert_eq!(top, vec!["reservationId", "ownerId", "groupSet", "instancesSet"]);
    assert!(one(&xml, "reservationId").starts_with("r-"));
    assert_eq!(one(&xml, "ownerId"), alice_number());
    let ids = all(&xml, "instanceId");
    assert_eq!(ids.len(), 3);
    assert_eq!(all(&xml, "name").iter().filter(|n| *n == "pending").count(), 3);
    assert_eq!(all(&xml, "amiLaunchIndex"), vec!["0", "1", "2"]);
    assert_eq!(all(&xml, "instanceType"), vec!["m1.large"; 3]);
    assert_eq!(all(&xml, "imageId"), vec![ami.clone(); 3]);
    assert_eq!(all(&xml, "keyName"), vec!["k1"; 3]);
    assert_eq!(all(&xml, "availabilityZone"), vec!["zone1"; 3]);
    assert_eq!(all(&xml, "groupName")[0], "default");
    assert_eq!(all(&xml, "value"), vec!["web"; 3]);
    // 3 deploys + createTags + its job; metadata came from the cache (key pairs: one list).
    let cmds = cs.commands();
    assert_eq!(cmds.iter().filter(|c| *c == "deployVirtualMachine").count(), 3);
    assert!(cmds.contains(&"createTags".to_string()));
    assert_eq!(calls as usize, cmds.len());
    let deploy = cs.calls().into_iter().find(|(c, _)| c == "deployVirtualMachine").unwrap().1;
    for (k, v) in [
        ("templateid", TPL_UBUNTU),
        ("serviceofferingid", OFF_LARGE),
        ("zoneid", ZONE1),
        ("keypair", "k1"),
        ("userdata", "aGVsbG8="),
    ] {
        assert!(deploy.contains(&(k.to_string(), v.to_string())), "{k} missing in {deploy:?}");
    }
    // The batch is one reservation in DescribeInstances too.
    let d = ex.execute(&req("DescribeInstances", &[]), &who()).await.unwrap();
    assert_eq!(all(&d, "reservationId"), vec![one(&xml, "reservationId")]);
    assert_eq!(all(&d, "value"), vec!["web"; 3]);

    // Steady state: a plain RunInstances costs exactly one backend call.
    cs.clear_calls();
    let (r, calls) = ex
        .execute_counted(&req("RunInstances", &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1")]), &who())
        .await;
    r.unwrap();
    assert_eq!(calls, 1, "{:?}", cs.commands());
}

#[tokio::test]
async fn run_instances_client_token_and_errors() {
    let (cs, ex) = setup();
    let ami = ec2_id(Kind::Image, TPL_UBUNTU);
    let base = [("ImageId", ami.as_str()), ("MinCount", "1"), ("MaxCount", "2"), ("ClientToken", "tok-1")];
    let first = ex.execute(&req("RunInstances", &base), &who()).await.unwrap();
    cs.clear_calls();
    let again = ex.execute(&req("RunInstances", &base), &who()).await.unwrap();
    assert_eq!(first, again);
    assert!(cs.commands().is_empty());
    let mut changed = base.to_vec();
    changed[2] = ("MaxCount", "3");
    let e = ex.execute(&req("RunInstances", &changed), &who()).await.unwrap_err();
    assert_eq!(e.code, "IdempotentParameterMismatch");

    let e = ex
        .execute(
            &req(
                "RunInstances",
                &[
                    ("ImageId", &ami),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("SecurityGroup.1", "a"),
                    ("SecurityGroupId.1", "sg-12345678"),
                ],
            ),
            &who(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidParameterCombination");
    let e = ex.execute(&req("RunInstances", &[("MinCount", "1"), ("MaxCount", "1")]), &who()).await.unwrap_err();
    assert_eq!(e.message, "The request must contain the parameter ImageId");
    let e = ex
        .execute(&req("RunInstances", &[("ImageId", &ami), ("MinCount", "2"), ("MaxCount", "1")]), &who())
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let e = ex
        .execute(
            &req(
                "RunInstances",
                &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("InstanceType", "x9.huge")],
            ),
            &who(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let e = ex
        .execute(
            &req("RunInstances", &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("KeyName", "nokey")]),
            &who(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.code.as_ref(), e.message.as_str()),
        ("InvalidKeyPair.NotFound", "The key pair 'nokey' does not exist")
    );
    let e = ex
        .execute(
            &req(
                "RunInstances",
                &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("Placement.AvailabilityZone", "zz")],
            ),
            &who(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.message, "Invalid availability zone: [zz]");
    let e = ex
        .execute(
            &req(
                "RunInstances",
                &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("SecurityGroup.1", "nosuch")],
            ),
            &who(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.code.as_ref(), e.message.as_str()),
        ("InvalidGroup.NotFound", "The security group 'nosuch' does not exist")
    );
    let xml = ex
        .execute(
            &req(
                "RunInstances",
                &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("SecurityGroup.1", "default")],
            ),
            &who(),
        )
        .await
        .unwrap();
    assert_eq!(all(&xml, "groupName"), vec!["default", "default"]);

    // DryRun: validated and resolved, nothing deployed.
    cs.clear_calls();
    let e = ex
        .execute(
            &req("RunInstances", &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "1"), ("DryRun", "true")]),
            &who(),
        )
        .await
        .unwrap_err();
    assert_eq!((e.code.as_ref(), e.status()), ("DryRunOperation", 412));
    assert!(!cs.commands().contains(&"deployVirtualMachine".to_string()));
}

#[tokio::test]
async fn run_instances_rolls_back_below_min_count() {
    let (cs, ex) = setup();
    let ami = ec2_id(Kind::Image, TPL_UBUNTU);
    cs.state.lock().unwrap().deploy_ok_then_fail = Some((
        2,
        CsError::Api {
            command: "deployVirtualMachine".into(),
            errorcode: 533,
            cserrorcode: Some(4325),
            text: "no capacity".into(),
        },
    ));
    let e = ex
        .execute(&req("RunInstances", &[("ImageId", &ami), ("MinCount", "3"), ("MaxCount", "4")]), &who())
        .await
        .unwrap_err();
    assert_eq!((e.code.as_ref(), e.status()), ("InsufficientInstanceCapacity", 500));
    // The rollback runs after the answer (recorded in the operations journal): both VMs go.
    for _ in 0..200 {
        if cs.state.lock().unwrap().vms.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(cs.commands().iter().filter(|c| *c == "destroyVirtualMachine").count(), 2);
    assert!(cs.state.lock().unwrap().vms.is_empty());

    // Enough for MinCount: keep what was made.
    cs.state.lock().unwrap().deploy_ok_then_fail = Some((
        2,
        CsError::Api {
            command: "deployVirtualMachine".into(),
            errorcode: 533,
            cserrorcode: Some(4325),
            text: "no capacity".into(),
        },
    ));
    let xml = ex
        .execute(&req("RunInstances", &[("ImageId", &ami), ("MinCount", "1"), ("MaxCount", "4")]), &who())
        .await
        .unwrap();
    assert_eq!(all(&xml, "instanceId").len(), 2);
}

#[tokio::test]
async fn state_changes() {
    let (cs, ex) = setup();
    let a = cs.add_vm("a", "Running", serde_json::json!({}));
    let b = cs.add_vm("b", "Stopped", serde_json::json!({}));
    let ia = ec2_id(Kind::Instance, &a);
    let ib = ec2_id(Kind::Instance, &b);
    ex.execute(&req("DescribeInstances", &[]), &who()).await.unwrap();

    cs.clear_calls();
    let xml = ex
        .execute(&req("StopInstances", &[("InstanceId.1", &ia), ("InstanceId.2", &ib), ("Force", "true")]), &who())
        .await
        .unwrap();
    assert_eq!(children(&xml, "item"), vec!["instanceId", "currentState", "previousState"]);
    assert_eq!(all(&xml, "name"), vec!["stopping", "running", "stopped", "stopped"]);
    assert_eq!(all(&xml, "code"), vec!["64", "16", "80", "80"]);
    // One list call, one stop (the stopped one is left alone).
    assert_eq!(cs.commands(), vec!["listVirtualMachines", "stopVirtualMachine"]);
    assert!(cs.calls()[1].1.contains(&("forced".to_string(), "true".to_string())));

    let xml = ex.execute(&req("StartInstances", &[("InstanceId.1", &ib)]), &who()).await.unwrap();
    assert_eq!(all(&xml, "name"), vec!["pending", "stopped"]);

    let xml = ex.execute(&req("RebootInstances", &[("InstanceId.1", &ib)]), &who()).await.unwrap_err();
    assert_eq!(xml.code, "IncorrectInstanceState");
    let c = cs.add_vm("c", "Running", serde_json::json!({}));
    let ic = ec2_id(Kind::Instance, &c);
    let xml = ex.execute(&req("RebootInstances", &[("InstanceId.1", &ic)]), &who()).await.unwrap();
    assert_eq!(xml, "<return>true</return>");

    let xml = ex.execute(&req("TerminateInstances", &[("InstanceId.1", &ic)]), &who()).await.unwrap();
    assert_eq!(all(&xml, "name"), vec!["shutting-down", "running"]);
    assert_eq!(all(&xml, "code"), vec!["32", "16"]);
    // CloudStack no longer lists it; EC2 keeps showing it as terminated.
    let xml = ex.execute(&req("DescribeInstances", &[("InstanceId.1", &ic)]), &who()).await.unwrap();
    assert_eq!(all(&xml, "name"), vec!["terminated"]);
    let xml = ex
        .execute(
            &req("DescribeInstances", &[("Filter.1.Name", "instance-state-name"), ("Filter.1.Value.1", "terminated")]),
            &who(),
        )
        .await
        .unwrap();
    assert_eq!(all(&xml, "instanceId"), vec![ic.clone()]);
    let xml = ex.execute(&req("TerminateInstances", &[("InstanceId.1", &ic)]), &who()).await.unwrap();
    assert_eq!(all(&xml, "name"), vec!["terminated", "terminated"]);
    let e = ex.execute(&req("StartInstances", &[("InstanceId.1", &ic)]), &who()).await.unwrap_err();
    assert_eq!(e.code, "IncorrectInstanceState");

    let e = ex.execute(&req("StopInstances", &[]), &who()).await.unwrap_err();
    assert_eq!(e.code, "MissingParameter");
    let e = ex.execute(&req("StopInstances", &[("InstanceId.1", &ia), ("DryRun", "true")]), &who()).await.unwrap_err();
    assert_eq!(e.code, "DryRunOperation");
}

#[tokio::test]
async fn backend_errors_map_by_code() {
    let (cs, ex) = setup();
    cs.state.lock().unwrap().fail_all = Some(CsError::Transport("connection refused".into()));
    let e = ex.execute(&req("DescribeInstances", &[]), &who()).await.unwrap_err();
    assert_eq!((e.code.as_ref(), e.status()), ("Unavailable", 503));
    cs.state.lock().unwrap().fail_all = Some(CsError::Api {
        command: "listVirtualMachines".into(),
        errorcode: 401,
        cserrorcode: None,
        text: "unable to verify".into(),
    });
    let e = ex.execute(&req("DescribeInstances", &[]), &who()).await.unwrap_err();
    assert_eq!((e.code.as_ref(), e.status()), ("AuthFailure", 401));
    cs.state.lock().unwrap().fail_all = Some(CsError::Api {
        command: "listVirtualMachines".into(),
        errorcode: 530,
        cserrorcode: Some(4250),
        text: "db down at host x".into(),
    });
    let e = ex.execute(&req("DescribeInstances", &[]), &who()).await.unwrap_err();
    assert_eq!((e.code.as_ref(), e.status()), ("InternalError", 500));
    assert!(!e.message.contains("host x"));
}

/// A CloudStack older than 4.13.2 names a VM's OS only by `ostypeid`: DescribeInstances reads the
/// names from one listOsTypes (cached) and answers platform windows for Windows guests.
#[tokio::test]
async fn instance_platform_from_os_types() {
    let (cs, ex) = setup();
    let w = cs.add_vm("win", "Running", serde_json::json!({"ostypeid": "os-win"}));
    let l = cs.add_vm("lin", "Running", serde_json::json!({"ostypeid": "os-lin"}));
    let xml = ex.execute(&req("DescribeInstances", &[]), &who()).await.unwrap();
    let inst = |id: &str| {
        let ec2 = ec2_id(Kind::Instance, id);
        let start = xml.find(&format!("<instanceId>{ec2}</instanceId>")).unwrap();
        let end = xml[start + 1..].find("<instanceId>").map(|e| start + 1 + e).unwrap_or(xml.len());
        xml[start..end].to_string()
    };
    assert!(inst(&w).contains("<platform>windows</platform>"), "{xml}");
    assert!(inst(&w).contains("<platformDetails>Windows</platformDetails>"), "{xml}");
    assert!(!inst(&l).contains("<platform>"), "{xml}");
    assert!(inst(&l).contains("<usageOperation>RunInstances</usageOperation>"), "{xml}");
    let xml = ex
        .execute(&req("DescribeInstances", &[("Filter.1.Name", "platform"), ("Filter.1.Value.1", "windows")]), &who())
        .await
        .unwrap();
    assert_eq!(all(&xml, "instanceId"), vec![ec2_id(Kind::Instance, &w)]);
    // One listOsTypes for both requests (metadata cache).
    assert_eq!(cs.commands().iter().filter(|c| *c == "listOsTypes").count(), 1);
}
