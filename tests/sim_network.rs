//! Advanced networking over real HTTP: offerings, isolated networks, VPCs and tiers, source
//! NAT, routers, tags, limits and isolation (docs/simulator.md, "Networking").

mod sim_support;

use serde_json::Value;
use sim_support::*;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

async fn create_vpc(cs: &Cs, name: &str, cidr: &str) -> Value {
    let r = cs
        .run("createVPC", &[("name", name), ("zoneid", ZONE3), ("cidr", cidr), ("vpcofferingid", VPC_OFF_DEFAULT)])
        .await;
    r["vpc"].clone()
}

async fn tier(cs: &Cs, vpc: &str, name: &str, gateway: &str) -> Value {
    let r = cs
        .ok(
            "createNetwork",
            &[
                ("name", name),
                ("zoneid", ZONE3),
                ("networkofferingid", NET_OFF_TIER),
                ("vpcid", vpc),
                ("gateway", gateway),
                ("netmask", "255.255.255.0"),
            ],
        )
        .await;
    r["network"].clone()
}

#[tokio::test]
async fn offerings_are_listed_with_filters() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let all = cs.items("listNetworkOfferings", &[], "networkoffering").await;
    assert_eq!(all.len(), 4);
    let vpc = cs.items("listNetworkOfferings", &[("forvpc", "true")], "networkoffering").await;
    assert_eq!(vpc.iter().map(|o| s(&o["id"])).collect::<Vec<_>>(), vec![NET_OFF_TIER, NET_OFF_TIER_NOLB]);
    assert!(vpc.iter().all(|o| o["forvpc"] == true && o["guestiptype"] == "Isolated"));
    let lb = cs
        .items("listNetworkOfferings", &[("forvpc", "true"), ("supportedservices", "Lb,SourceNat")], "networkoffering")
        .await;
    assert_eq!(lb.len(), 1);
    assert_eq!(lb[0]["id"], NET_OFF_TIER);
    // A security-group zone offers the shared SG offering only; zone3 the others.
    let z1 = cs.items("listNetworkOfferings", &[("zoneid", ZONE1)], "networkoffering").await;
    assert_eq!(z1.len(), 1);
    assert_eq!(z1[0]["guestiptype"], "Shared");
    let z3 = cs.items("listNetworkOfferings", &[("zoneid", ZONE3)], "networkoffering").await;
    assert_eq!(z3.len(), 3);
    let req = cs.items("listNetworkOfferings", &[("availability", "Required")], "networkoffering").await;
    assert_eq!(req[0]["id"], NET_OFF_ISOLATED);
    assert_eq!(req[0]["service"].as_array().unwrap().iter().filter(|x| x["name"] == "SourceNat").count(), 1);
    let off = cs.items("listVPCOfferings", &[], "vpcoffering").await;
    assert_eq!(off.len(), 2);
    assert_eq!(off[0]["id"], VPC_OFF_DEFAULT);
    assert_eq!(off[0]["isdefault"], true);
    assert!(cs.items("listVPCOfferings", &[("zoneid", ZONE1)], "vpcoffering").await.is_empty());
    cs.err("listNetworkOfferings", &[("id", "not-a-uuid")], 431).await;
}

#[tokio::test]
async fn isolated_network_lifecycle_and_default_network() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    // No network yet: the deploy creates `alice-network` from the Required offering.
    let vm = deploy(&cs, &[("zoneid", ZONE3)]).await;
    let nic = &vm["nic"][0];
    assert_eq!(nic["type"], "Isolated");
    assert_eq!(nic["gateway"], "10.1.1.1");
    assert_eq!(nic["ipaddress"], "10.1.1.2");
    assert_eq!(nic["isdefault"], true);
    let nets = cs.items("listNetworks", &[("zoneid", ZONE3)], "network").await;
    assert_eq!(nets.len(), 1);
    assert_eq!(nets[0]["name"], "alice-network");
    assert_eq!(nets[0]["state"], "Implemented");
    assert_eq!(nets[0]["networkofferingid"], NET_OFF_ISOLATED);
    let net1 = s(&nets[0]["id"]);
    // Implementing it took a source NAT address and started a router.
    let snat = cs.items("listPublicIpAddresses", &[("issourcenat", "true")], "publicipaddress").await;
    assert_eq!(snat.len(), 1);
    assert_eq!(snat[0]["associatednetworkid"], net1.as_str());
    let admin = Cs::of(&h, "admin");
    let routers = admin.items("listRouters", &[("networkid", &net1)], "router").await;
    assert_eq!(routers.len(), 1);
    assert_eq!(routers[0]["publicip"], snat[0]["ipaddress"]);
    cs.err("listRouters", &[], 401).await;
    // The source NAT address cannot be released.
    let e = cs.err("disassociateIpAddress", &[("id", &s(&snat[0]["id"]))], 431).await;
    assert_eq!(e["errortext"], "ip address is used for source nat purposes and can not be disassociated.");

    // A second network with its own CIDR; then deploy without networkids is ambiguous.
    let n2 = cs
        .ok(
            "createNetwork",
            &[
                ("name", "net2"),
                ("displaytext", "second"),
                ("zoneid", ZONE3),
                ("networkofferingid", NET_OFF_ISOLATED),
                ("gateway", "192.168.5.1"),
                ("netmask", "255.255.255.0"),
            ],
        )
        .await["network"]
        .clone();
    assert_eq!(n2["cidr"], "192.168.5.0/24");
    assert_eq!(n2["state"], "Allocated");
    assert_eq!(n2["account"], "alice");
    let n2id = s(&n2["id"]);
    let e = cs
        .err("deployVirtualMachine", &[("zoneid", ZONE3), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO)], 431)
        .await;
    assert!(s(&e["errortext"]).starts_with("More than 1 default Isolated networks are found for Account Acct["), "{e}");
    // Into net2 with a chosen address; a taken one and one outside the CIDR are refused.
    let vm2 = deploy(&cs, &[("zoneid", ZONE3), ("networkids", &n2id), ("ipaddress", "192.168.5.77")]).await;
    assert_eq!(vm2["nic"][0]["ipaddress"], "192.168.5.77");
    let base = [("zoneid", ZONE3), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO), ("networkids", &n2id)];
    let mut p = base.to_vec();
    p.push(("ipaddress", "192.168.5.77"));
    let e = cs.err("deployVirtualMachine", &p, 431).await;
    assert!(s(&e["errortext"]).contains("already in use"), "{e}");
    let mut p = base.to_vec();
    p.push(("ipaddress", "10.9.9.9"));
    cs.err("deployVirtualMachine", &p, 431).await;
    // Two NICs through iptonetworklist: the first is the default.
    let vm3 = deploy(
        &cs,
        &[
            ("zoneid", ZONE3),
            ("iptonetworklist[0].networkid", &n2id),
            ("iptonetworklist[0].ip", "192.168.5.9"),
            ("iptonetworklist[1].networkid", &net1),
        ],
    )
    .await;
    assert_eq!(vm3["nic"].as_array().unwrap().len(), 2);
    assert_eq!(vm3["nic"][0]["ipaddress"], "192.168.5.9");
    assert_eq!(vm3["nic"][1]["isdefault"], false);
    assert_eq!(vm3["nic"][1]["deviceid"], "1");
    let vms = cs.items("listVirtualMachines", &[("networkid", &net1)], "virtualmachine").await;
    assert_eq!(vms.len(), 2);

    // update / restart / delete.
    let r = cs.run("updateNetwork", &[("id", &n2id), ("name", "renamed"), ("displaytext", "d")]).await;
    assert_eq!(r["network"]["name"], "renamed");
    cs.err("updateNetwork", &[("id", &n2id), ("guestvmcidr", "192.168.5.0/25")], 431).await;
    assert_eq!(cs.run("restartNetwork", &[("id", &n2id), ("cleanup", "true")]).await["success"], true);
    // With VMs on it the delete job fails (530) and the network stays.
    let j = cs.ok("deleteNetwork", &[("id", &n2id)]).await;
    let j = cs.wait(&s(&j["jobid"])).await;
    assert_eq!(j["jobstatus"], 2);
    assert_eq!(j["jobresult"]["errorcode"], 530);
    assert_eq!(cs.items("listNetworks", &[("id", &n2id)], "network").await.len(), 1);
    for v in [&vm2, &vm3] {
        admin.run("destroyVirtualMachine", &[("id", &s(&v["id"])), ("expunge", "true")]).await;
    }
    assert_eq!(cs.run("deleteNetwork", &[("id", &n2id)]).await["success"], true);
    assert!(cs.items("listNetworks", &[("id", &n2id)], "network").await.is_empty());
    // An Allocated network cannot be restarted (the job fails with 431).
    let n3 = cs
        .ok("createNetwork", &[("name", "n3"), ("zoneid", ZONE3), ("networkofferingid", NET_OFF_ISOLATED)])
        .await["network"]
        .clone();
    assert_eq!(n3["cidr"], "10.1.1.0/24", "the zone's guest CIDR by default");
    let j = cs.ok("restartNetwork", &[("id", &s(&n3["id"]))]).await;
    let j = cs.wait(&s(&j["jobid"])).await;
    assert_eq!(j["jobresult"]["errorcode"], 431);
    assert_eq!(
        j["jobresult"]["errortext"],
        "Network is not in the right state to be restarted. Correct states are: Implemented, Setup"
    );
}

#[tokio::test]
async fn create_network_errors_change_nothing() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let before = cs.ok("listNetworks", &[("listall", "true")]).await;
    let base = [("name", "x"), ("zoneid", ZONE3), ("networkofferingid", NET_OFF_ISOLATED)];
    let e = cs.err("createNetwork", &base[1..], 431).await;
    assert_eq!(e["errortext"], "Unable to execute API command createnetwork due to missing parameter name");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("gateway", "10.3.0.1"), ("netmask", "255.255.0.0")], "Cidr size can't be less than 22"),
        (
            vec![("gateway", "10.3.0.0"), ("netmask", "255.255.255.0")],
            "Invalid gateway IP provided. Either the IP is broadcast or network IP.",
        ),
        (vec![("gateway", "10.3.0.x"), ("netmask", "255.255.255.0")], "Invalid gateway"),
        (vec![("gateway", "10.3.0.1"), ("netmask", "255.0.255.0")], "Invalid netmask"),
        (vec![("networkofferingid", NET_OFF_TIER)], "Network offering can be used for VPC networks only"),
        (
            vec![("zoneid", ZONE1)],
            "Network creation of type Isolated is not supported in zone zone1 as it is security group enabled",
        ),
    ];
    for (extra, text) in cases {
        let mut p: Vec<(&str, &str)> =
            base.iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).copied().collect();
        p.extend(extra.iter().copied());
        let e = cs.err("createNetwork", &p, 431).await;
        assert_eq!(e["errortext"], text, "{p:?}");
    }
    assert_eq!(cs.ok("listNetworks", &[("listall", "true")]).await, before);
    // Limits: carol may create one network and one VPC.
    let h = start_seed(Some(&default_seed_plus_limits())).await;
    let carol = Cs::of(&h, "carol");
    carol.ok("createNetwork", &base).await;
    let e = carol.err("createNetwork", &base, 535).await;
    assert!(s(&e["errortext"]).starts_with("Maximum number of resources of type 'network' for account name=carol"));
    carol
        .run(
            "createVPC",
            &[("name", "v"), ("zoneid", ZONE3), ("cidr", "10.0.0.0/16"), ("vpcofferingid", VPC_OFF_DEFAULT)],
        )
        .await;
    let e = carol
        .err(
            "createVPC",
            &[("name", "v2"), ("zoneid", ZONE3), ("cidr", "10.0.0.0/16"), ("vpcofferingid", VPC_OFF_DEFAULT)],
            535,
        )
        .await;
    assert!(s(&e["errortext"]).starts_with("Maximum number of resources of type 'vpc' for account name=carol"));
}

fn default_seed_plus_limits() -> String {
    default_seed_plus(
        "[[accounts]]\nname = \"carol\"\ndomain = \"dev\"\nnetwork_limit = 1\nvpc_limit = 1\n[[accounts.users]]\nusername = \"carol\"\n",
    )
}

#[tokio::test]
async fn vpc_tiers_and_errors() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    // CIDR rules (VpcManagerImpl.createVpc).
    let p = |cidr: &'static str| [("name", "v"), ("zoneid", ZONE3), ("cidr", cidr), ("vpcofferingid", VPC_OFF_DEFAULT)];
    let e = cs.err("createVPC", &p("10.0.0.0/33"), 431).await;
    assert_eq!(e["errortext"], "Invalid CIDR specified 10.0.0.0/33");
    let e = cs.err("createVPC", &p("8.8.0.0/16"), 431).await;
    assert_eq!(e["errortext"], "Guest Cidr 8.8.0.0/16 is not RFC1918 compliant");
    let e = cs
        .err(
            "createVPC",
            &[("name", "v"), ("zoneid", ZONE1), ("cidr", "10.0.0.0/16"), ("vpcofferingid", VPC_OFF_DEFAULT)],
            431,
        )
        .await;
    assert!(s(&e["errortext"]).contains("should be enabled in at least one physical network"));
    assert!(cs.items("listVPCs", &[], "vpc").await.is_empty(), "bad input created nothing");

    let vpc = create_vpc(&cs, "web", "10.0.0.0/16").await;
    assert_eq!(vpc["state"], "Enabled");
    assert_eq!(vpc["cidr"], "10.0.0.0/16");
    assert_eq!(vpc["vpcofferingid"], VPC_OFF_DEFAULT);
    assert_eq!(vpc["network"], serde_json::json!([]));
    let vid = s(&vpc["id"]);
    // Its source NAT address and router.
    let snat = cs.items("listPublicIpAddresses", &[("vpcid", &vid), ("issourcenat", "true")], "publicipaddress").await;
    assert_eq!(snat.len(), 1);
    assert_eq!(snat[0]["vpcid"], vid.as_str());
    let admin = Cs::of(&h, "admin");
    let r = admin.items("listRouters", &[("vpcid", &vid)], "router").await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["state"], "Running");
    assert_eq!(r[0]["vpcid"], vid.as_str());

    let t1 = tier(&cs, &vid, "t1", "10.0.1.1").await;
    assert_eq!(t1["vpcid"], vid.as_str());
    assert_eq!(t1["cidr"], "10.0.1.0/24");
    assert_eq!(t1["aclid"], ACL_DEFAULT_DENY, "a tier without aclid gets default_deny");
    assert_eq!(t1["networkdomain"], vpc["networkdomain"]);
    let t1id = s(&t1["id"]);
    let tier_p = |gw: &'static str, mask: &'static str| {
        vec![
            ("name", "t"),
            ("zoneid", ZONE3),
            ("networkofferingid", NET_OFF_TIER),
            ("vpcid", vid.clone().leak() as &str),
            ("gateway", gw),
            ("netmask", mask),
        ]
    };
    let e = cs.err("createNetwork", &tier_p("10.0.1.129", "255.255.255.128"), 431).await;
    assert!(s(&e["errortext"]).starts_with("Network cidr 10.0.1.128/25 crosses other network cidr Ntwk["), "{e}");
    assert!(
        s(&e["errortext"]).ends_with("belonging to the same vpc [VPC [") || s(&e["errortext"]).contains("-web]"),
        "{e}"
    );
    let e = cs.err("createNetwork", &tier_p("10.5.1.1", "255.255.255.0"), 431).await;
    assert!(s(&e["errortext"]).starts_with("Network cidr 10.5.1.0/24 is not within vpc [VPC ["), "{e}");
    assert!(s(&e["errortext"]).ends_with("-web] cidr"), "{e}");
    let mut no_gw = tier_p("x", "y");
    no_gw.retain(|(k, _)| *k != "gateway" && *k != "netmask");
    let e = cs.err("createNetwork", &no_gw, 431).await;
    assert_eq!(e["errortext"], "Gateway/netmask are required when create network for VPC");
    let mut wrong_off = tier_p("10.0.9.1", "255.255.255.0");
    wrong_off[2] = ("networkofferingid", NET_OFF_ISOLATED);
    let e = cs.err("createNetwork", &wrong_off, 431).await;
    assert_eq!(e["errortext"], "Network offering can't be used for VPC networks");
    let mut allow = tier_p("10.0.2.1", "255.255.255.0");
    allow.push(("aclid", ACL_DEFAULT_ALLOW));
    let t2 = cs.ok("createNetwork", &allow).await["network"].clone();
    assert_eq!(t2["aclname"], "default_allow");
    assert_eq!(cs.items("listNetworks", &[("vpcid", &vid)], "network").await.len(), 2);
    assert_eq!(cs.items("listVPCs", &[("id", &vid)], "vpc").await[0]["network"].as_array().unwrap().len(), 2);

    // A VM in a tier: an address from its CIDR, or the one asked for.
    let vm = deploy(&cs, &[("zoneid", ZONE3), ("networkids", &t1id), ("ipaddress", "10.0.1.50")]).await;
    assert_eq!(vm["nic"][0]["ipaddress"], "10.0.1.50");
    assert_eq!(vm["nic"][0]["vpcid"], vid.as_str());
    let vm2 = deploy(&cs, &[("zoneid", ZONE3), ("networkids", &t1id)]).await;
    assert_eq!(vm2["nic"][0]["ipaddress"], "10.0.1.2");
    assert_eq!(cs.items("listVirtualMachines", &[("vpcid", &vid)], "virtualmachine").await.len(), 2);

    // associateIpAddress with vpcid; with a tier's networkid it is refused.
    let ip = cs.run("associateIpAddress", &[("vpcid", &vid)]).await["ipaddress"].clone();
    assert_eq!(ip["vpcid"], vid.as_str());
    assert_eq!(ip["issourcenat"], false);
    let e = cs.err("associateIpAddress", &[("networkid", &t1id)], 431).await;
    assert!(s(&e["errortext"]).starts_with("Can't assign ip to the network directly when network belongs to VPC"));

    // Tags on Vpc and Network.
    cs.run(
        "createTags",
        &[("resourcetype", "Vpc"), ("resourceids", &vid), ("tags[0].key", "env"), ("tags[0].value", "prod")],
    )
    .await;
    cs.run(
        "createTags",
        &[("resourcetype", "Network"), ("resourceids", &t1id), ("tags[0].key", "role"), ("tags[0].value", "web")],
    )
    .await;
    assert_eq!(cs.items("listVPCs", &[("tags[0].key", "env"), ("tags[0].value", "prod")], "vpc").await.len(), 1);
    assert_eq!(cs.items("listNetworks", &[("tags[0].key", "role")], "network").await.len(), 1);
    assert!(cs.items("listVPCs", &[("tags[0].key", "env"), ("tags[0].value", "dev")], "vpc").await.is_empty());

    // Isolation: bob neither sees nor touches alice's VPC.
    let bob = Cs::of(&h, "bob");
    assert!(bob.items("listVPCs", &[], "vpc").await.is_empty());
    bob.err("deleteVPC", &[("id", &vid)], 531).await;
    bob.err("createNetwork", &tier_p("10.0.7.1", "255.255.255.0"), 531).await;
    bob.err(
        "deployVirtualMachine",
        &[("zoneid", ZONE3), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO), ("networkids", &t1id)],
        531,
    )
    .await;

    // update / restart.
    let r = cs.run("updateVPC", &[("id", &vid), ("name", "web2"), ("displaytext", "the web")]).await;
    assert_eq!(r["vpc"]["name"], "web2");
    assert_eq!(cs.run("restartVPC", &[("id", &vid), ("cleanup", "true")]).await["success"], true);
    let r2 = admin.items("listRouters", &[("vpcid", &vid)], "router").await;
    assert_eq!(r2.len(), 1);
    assert_ne!(r2[0]["id"], r[0]["id"], "cleanup replaces the router");

    // Deleting a VPC with tiers fails in the job (431) and keeps it.
    let j = cs.ok("deleteVPC", &[("id", &vid)]).await;
    let j = cs.wait(&s(&j["jobid"])).await;
    assert_eq!(j["jobstatus"], 2);
    assert_eq!(j["jobresult"]["errorcode"], 431);
    assert!(s(&j["jobresult"]["errortext"]).ends_with("-web2] as its used by 2 networks"), "{j}");
    for v in [&vm, &vm2] {
        admin.run("destroyVirtualMachine", &[("id", &s(&v["id"])), ("expunge", "true")]).await;
    }
    cs.run("deleteNetwork", &[("id", &t1id)]).await;
    cs.run("deleteNetwork", &[("id", &s(&t2["id"]))]).await;
    assert_eq!(cs.run("deleteVPC", &[("id", &vid)]).await["success"], true);
    assert!(cs.items("listVPCs", &[("id", &vid)], "vpc").await.is_empty());
    // Its addresses and router went with it.
    assert!(cs.items("listPublicIpAddresses", &[("vpcid", &vid)], "publicipaddress").await.is_empty());
    assert!(admin.items("listRouters", &[("vpcid", &vid)], "router").await.is_empty());
}

#[tokio::test]
async fn vpc_start_false_defers_the_router() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let r = cs
        .run(
            "createVPC",
            &[
                ("name", "lazy"),
                ("zoneid", ZONE3),
                ("cidr", "172.16.0.0/16"),
                ("vpcofferingid", VPC_OFF_DEFAULT),
                ("start", "false"),
            ],
        )
        .await;
    let vid = s(&r["vpc"]["id"]);
    let admin = Cs::of(&h, "admin");
    assert!(admin.items("listRouters", &[("vpcid", &vid)], "router").await.is_empty());
    let t = tier(&cs, &vid, "t", "172.16.3.1").await;
    deploy(&cs, &[("zoneid", ZONE3), ("networkids", &s(&t["id"]))]).await;
    assert_eq!(admin.items("listRouters", &[("vpcid", &vid)], "router").await.len(), 1);
    assert_eq!(cs.items("listNetworks", &[("id", &s(&t["id"]))], "network").await[0]["state"], "Implemented");
}

#[tokio::test]
async fn network_acls() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vpc = create_vpc(&cs, "v", "10.10.0.0/16").await;
    let vid = s(&vpc["id"]);
    // The two default lists are visible to everyone, with their allow/deny-all rules.
    let lists = cs.items("listNetworkACLLists", &[], "networkacllist").await;
    let names: Vec<String> = lists.iter().map(|l| s(&l["name"])).collect();
    assert_eq!(names, vec!["default_deny", "default_allow"]);
    let rules = cs.items("listNetworkACLs", &[("aclid", ACL_DEFAULT_ALLOW)], "networkacl").await;
    assert_eq!(rules.len(), 2);
    assert!(rules.iter().all(|r| r["action"] == "Allow" && r["protocol"] == "all" && r["cidrlist"] == "0.0.0.0/0"));
    let e = cs.err("createNetworkACL", &[("aclid", ACL_DEFAULT_ALLOW), ("protocol", "tcp")], 431).await;
    assert_eq!(e["errortext"], "Default ACL cannot be modified");
    let e = cs.err("deleteNetworkACLList", &[("id", ACL_DEFAULT_DENY)], 431).await;
    assert_eq!(e["errortext"], "Default ACL cannot be removed");

    let list = cs.run("createNetworkACLList", &[("name", "web"), ("description", "web tier"), ("vpcid", &vid)]).await;
    let lid = s(&list["networkacllist"]["id"]);
    assert_eq!(list["networkacllist"]["vpcid"], vid.as_str());
    // Rules: numbers given or next, protocols by name or number, ICMP type/code, egress.
    let r1 = cs
        .run(
            "createNetworkACL",
            &[
                ("aclid", &lid),
                ("protocol", "TCP"),
                ("startport", "80"),
                ("endport", "80"),
                ("cidrlist", "0.0.0.0/0"),
                ("number", "10"),
            ],
        )
        .await["networkacl"]
        .clone();
    assert_eq!(
        (r1["protocol"].clone(), r1["number"].clone(), r1["traffictype"].clone()),
        ("tcp".into(), 10.into(), "Ingress".into())
    );
    let r2 = cs
        .run(
            "createNetworkACL",
            &[("aclid", &lid), ("protocol", "icmp"), ("icmptype", "8"), ("icmpcode", "0"), ("action", "deny")],
        )
        .await["networkacl"]
        .clone();
    assert_eq!(r2["number"], 11, "next number after the highest");
    assert_eq!(r2["action"], "Deny");
    let r3 = cs
        .run(
            "createNetworkACL",
            &[
                ("aclid", &lid),
                ("protocol", "47"),
                ("traffictype", "Egress"),
                ("cidrlist", "10.0.0.0/8,192.168.0.0/16"),
            ],
        )
        .await["networkacl"]
        .clone();
    assert_eq!(r3["traffictype"], "Egress");
    assert_eq!(r3["cidrlist"], "10.0.0.0/8,192.168.0.0/16");
    let bad: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("protocol", "tcp"), ("number", "10")], "ACL item with number 10 already exists in ACL: "),
        (vec![("protocol", "tcp"), ("number", "0")], "Invalid number [0]. Number cannot be < 1"),
        (vec![("protocol", "gre")], "Invalid protocol [gre]. Expected one of: [tcp,udp,icmp,all]"),
        (vec![("protocol", "300")], "Invalid protocol number: 300"),
        (
            vec![("protocol", "all"), ("startport", "1"), ("endport", "2")],
            "start port and end port must be null if protocol = 'all'",
        ),
        (
            vec![("protocol", "tcp"), ("startport", "90"), ("endport", "80")],
            "Start port can't be bigger than end port [startport=90,endport=80]",
        ),
        (vec![("protocol", "tcp"), ("icmptype", "8")], "Can specify icmpCode and icmpType for ICMP protocol only"),
        (
            vec![("protocol", "icmp"), ("startport", "1"), ("endport", "1")],
            "Can't specify start/end port when protocol is ICMP",
        ),
        (vec![("protocol", "tcp"), ("action", "drop")], "Invalid action [drop]. Permitted actions are Allow and Deny"),
        (vec![("protocol", "tcp"), ("traffictype", "sideways")], "Invalid traffic type sideways"),
    ];
    for (extra, text) in bad {
        let mut p = vec![("aclid", lid.as_str())];
        p.extend(extra);
        let e = cs.err("createNetworkACL", &p, 431).await;
        assert!(s(&e["errortext"]).starts_with(text), "{p:?}: {e}");
    }
    let e = cs.err("createNetworkACL", &[("aclid", &lid), ("protocol", "tcp"), ("cidrlist", "nonsense")], 431).await;
    assert_eq!(e["cserrorcode"], 9999);
    assert_eq!(cs.items("listNetworkACLs", &[("aclid", &lid)], "networkacl").await.len(), 3, "bad rules added nothing");
    // update (partial), delete.
    let u = cs.run("updateNetworkACLItem", &[("id", &s(&r1["id"])), ("endport", "88")]).await["networkacl"].clone();
    assert_eq!(
        (u["startport"].clone(), u["endport"].clone(), u["protocol"].clone()),
        ("80".into(), "88".into(), "tcp".into())
    );
    cs.run("deleteNetworkACL", &[("id", &s(&r2["id"]))]).await;
    assert_eq!(
        cs.items("listNetworkACLs", &[("aclid", &lid), ("traffictype", "Ingress")], "networkacl").await.len(),
        1
    );

    // A tier uses it via replaceNetworkACLList; then the list cannot be deleted.
    let t = tier(&cs, &vid, "t", "10.10.1.1").await;
    let tid = s(&t["id"]);
    cs.run("replaceNetworkACLList", &[("aclid", &lid), ("networkid", &tid)]).await;
    assert_eq!(cs.items("listNetworks", &[("id", &tid)], "network").await[0]["aclid"], lid.as_str());
    assert_eq!(cs.items("listNetworkACLs", &[("networkid", &tid)], "networkacl").await.len(), 2);
    assert_eq!(cs.items("listNetworkACLLists", &[("networkid", &tid)], "networkacllist").await[0]["id"], lid.as_str());
    let j = cs.ok("deleteNetworkACLList", &[("id", &lid)]).await;
    let j = cs.wait(&s(&j["jobid"])).await;
    assert_eq!(j["jobstatus"], 2);
    // Another account can neither see nor use it.
    let bob = Cs::of(&h, "bob");
    assert_eq!(bob.items("listNetworkACLLists", &[], "networkacllist").await.len(), 2);
    bob.err("createNetworkACL", &[("aclid", &lid), ("protocol", "tcp")], 531).await;
    cs.run("replaceNetworkACLList", &[("aclid", ACL_DEFAULT_ALLOW), ("networkid", &tid)]).await;
    assert_eq!(cs.run("deleteNetworkACLList", &[("id", &lid)]).await["success"], true);
    // Deleting the VPC removes its lists (the tier first).
    cs.run("deleteNetwork", &[("id", &tid)]).await;
    cs.run("createNetworkACLList", &[("name", "x"), ("vpcid", &vid)]).await;
    cs.run("deleteVPC", &[("id", &vid)]).await;
    assert_eq!(cs.items("listNetworkACLLists", &[], "networkacllist").await.len(), 2);
}

#[tokio::test]
async fn nics_and_static_nat_in_a_vpc() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vpc = create_vpc(&cs, "v", "10.20.0.0/16").await;
    let vid = s(&vpc["id"]);
    let t1 = s(&tier(&cs, &vid, "t1", "10.20.1.1").await["id"]);
    let t2 = s(&tier(&cs, &vid, "t2", "10.20.2.1").await["id"]);
    let vm = deploy(&cs, &[("zoneid", ZONE3), ("networkids", &t1)]).await;
    let vmid = s(&vm["id"]);
    let nics = cs.items("listNics", &[("virtualmachineid", &vmid)], "nic").await;
    assert_eq!(nics.len(), 1);
    let nic1 = s(&nics[0]["id"]);
    assert_eq!(nics[0]["virtualmachineid"], vmid.as_str());
    cs.err("listNics", &[], 431).await;

    // Second NIC; a second one on the same network fails (530); the default cannot be removed.
    let r = cs
        .run("addNicToVirtualMachine", &[("virtualmachineid", &vmid), ("networkid", &t2), ("ipaddress", "10.20.2.40")])
        .await;
    let nic2 =
        r["virtualmachine"]["nic"].as_array().unwrap().iter().find(|n| n["networkid"] == t2.as_str()).unwrap().clone();
    assert_eq!(nic2["ipaddress"], "10.20.2.40");
    assert_eq!(nic2["isdefault"], false);
    let e = cs.err("addNicToVirtualMachine", &[("virtualmachineid", &vmid), ("networkid", &t2)], 530).await;
    assert!(
        s(&e["errortext"]).starts_with("A NIC already exists")
            || e["errortext"] == "Internal error executing command, please contact your system administrator"
    );
    let e = cs.err("removeNicFromVirtualMachine", &[("virtualmachineid", &vmid), ("nicid", &nic1)], 431).await;
    assert!(s(&e["errortext"]).ends_with(", nic is default."), "{e}");
    // Swap the default.
    let r =
        cs.run("updateDefaultNicForVirtualMachine", &[("virtualmachineid", &vmid), ("nicid", &s(&nic2["id"]))]).await;
    let nics = r["virtualmachine"]["nic"].as_array().unwrap().clone();
    assert_eq!(nics[0]["id"], nic2["id"]);
    assert_eq!(nics[0]["isdefault"], true);
    assert_eq!(nics[0]["deviceid"], "0");
    let j =
        cs.ok("updateDefaultNicForVirtualMachine", &[("virtualmachineid", &vmid), ("nicid", &s(&nic2["id"]))]).await;
    assert_eq!(cs.wait(&s(&j["jobid"])).await["jobstatus"], 2, "already the default");

    // Secondary IPs and static NAT to one of them.
    let sec = cs.run("addIpToNic", &[("nicid", &nic1), ("ipaddress", "10.20.1.77")]).await["nicsecondaryip"].clone();
    assert_eq!(sec["ipaddress"], "10.20.1.77");
    let e = cs.err("addIpToNic", &[("nicid", &nic1), ("ipaddress", "10.20.1.77")], 431).await;
    assert!(s(&e["errortext"]).contains("already in use"));
    let ip = cs.run("associateIpAddress", &[("vpcid", &vid)]).await["ipaddress"].clone();
    let ipid = s(&ip["id"]);
    let e = cs.err("enableStaticNat", &[("ipaddressid", &ipid), ("virtualmachineid", &vmid)], 431).await;
    assert!(s(&e["errortext"]).ends_with("as ip is not associated with any network and no networkId is passed in"));
    cs.ok(
        "enableStaticNat",
        &[("ipaddressid", &ipid), ("virtualmachineid", &vmid), ("networkid", &t1), ("vmguestip", "10.20.1.77")],
    )
    .await;
    let l = cs.items("listPublicIpAddresses", &[("id", &ipid)], "publicipaddress").await;
    assert_eq!(l[0]["vmipaddress"], "10.20.1.77");
    assert_eq!(l[0]["associatednetworkid"], t1.as_str());
    cs.err("removeIpFromNic", &[("id", &s(&sec["id"]))], 431).await;
    let snat = cs.items("listPublicIpAddresses", &[("vpcid", &vid), ("issourcenat", "true")], "publicipaddress").await;
    let e = cs
        .err(
            "enableStaticNat",
            &[("ipaddressid", &s(&snat[0]["id"])), ("virtualmachineid", &vmid), ("networkid", &t1)],
            431,
        )
        .await;
    assert!(s(&e["errortext"]).contains("is a sourceNat ip address"));
    cs.run("disableStaticNat", &[("ipaddressid", &ipid)]).await;
    assert_eq!(cs.run("removeIpFromNic", &[("id", &s(&sec["id"]))]).await["success"], true);

    // updateVmNicIp needs a Stopped VM.
    let e = cs.err("updateVmNicIp", &[("nicid", &nic1), ("ipaddress", "10.20.1.99")], 431).await;
    assert_eq!(e["errortext"], "VM is not Stopped, unable to update the vm nic having the specified id");
    cs.run("stopVirtualMachine", &[("id", &vmid)]).await;
    let r = cs.run("updateVmNicIp", &[("nicid", &nic1), ("ipaddress", "10.20.1.99")]).await;
    assert!(r["virtualmachine"]["nic"].as_array().unwrap().iter().any(|n| n["ipaddress"] == "10.20.1.99"));
    // Now the first NIC is not the default: it can go.
    let r = cs.run("removeNicFromVirtualMachine", &[("virtualmachineid", &vmid), ("nicid", &nic1)]).await;
    assert_eq!(r["virtualmachine"]["nic"].as_array().unwrap().len(), 1);
    // Bob cannot touch alice's NICs.
    let bob = Cs::of(&h, "bob");
    bob.err("listNics", &[("virtualmachineid", &vmid)], 531).await;
    bob.err("addIpToNic", &[("nicid", &s(&nic2["id"]))], 531).await;
}

/// Fault injection reaches the new commands through the same `[[faults]]` rules: a failed
/// createVPC job leaves no VPC; an injected createNetwork error changes nothing.
#[tokio::test]
async fn faults_cover_networking_commands() {
    let seed = default_seed_plus(
        "[[faults]]\ncommand = \"createVPC\"\njob = \"fail\"\njob_error_code = 530\njob_error_text = \"boom\"\n\
         [[faults]]\ncommand = \"createNetwork\"\nerror_code = 537\n",
    );
    let h = start_seed(Some(&seed)).await;
    let cs = Cs::of(&h, "alice");
    let r = cs
        .ok(
            "createVPC",
            &[("name", "f"), ("zoneid", ZONE3), ("cidr", "10.0.0.0/16"), ("vpcofferingid", VPC_OFF_DEFAULT)],
        )
        .await;
    let j = cs.wait(&s(&r["jobid"])).await;
    assert_eq!(j["jobstatus"], 2);
    assert_eq!(j["jobresult"]["errorcode"], 530);
    assert!(cs.items("listVPCs", &[], "vpc").await.is_empty());
    assert!(cs.items("listPublicIpAddresses", &[("issourcenat", "true")], "publicipaddress").await.is_empty());
    cs.err("createNetwork", &[("name", "n"), ("zoneid", ZONE3), ("networkofferingid", NET_OFF_ISOLATED)], 537).await;
    assert!(cs.items("listNetworks", &[("zoneid", ZONE3)], "network").await.is_empty());
}

#[tokio::test]
async fn port_forwarding_and_firewall_rules() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vm = deploy(&cs, &[("zoneid", ZONE3)]).await;
    let vmid = s(&vm["id"]);
    let net = s(&vm["nic"][0]["networkid"]);
    let ip = cs.run("associateIpAddress", &[("networkid", &net)]).await["ipaddress"].clone();
    let ipid = s(&ip["id"]);
    assert_eq!(ip["issourcenat"], false, "the network already has its source NAT address");
    let pf = |pub_p: &'static str, priv_p: &'static str| {
        vec![
            ("ipaddressid", ipid.clone().leak() as &str),
            ("virtualmachineid", vmid.clone().leak() as &str),
            ("protocol", "tcp"),
            ("publicport", pub_p),
            ("privateport", priv_p),
        ]
    };
    let r = cs.run("createPortForwardingRule", &pf("2222", "22")).await["portforwardingrule"].clone();
    assert_eq!((r["publicport"].clone(), r["privateport"].clone()), ("2222".into(), "22".into()));
    assert_eq!(r["virtualmachineid"], vmid.as_str());
    assert_eq!(r["vmguestip"], vm["nic"][0]["ipaddress"]);
    let rid = s(&r["id"]);
    // openfirewall (default true) opened the public port.
    let fw = cs.items("listFirewallRules", &[("ipaddressid", &ipid)], "firewallrule").await;
    assert_eq!(fw.len(), 1);
    assert_eq!(fw[0]["startport"], 2222);
    // An overlapping range is a conflict (537); another protocol on the same port is fine.
    let e = cs.err("createPortForwardingRule", &pf("2222", "23"), 537).await;
    assert!(s(&e["errortext"]).starts_with("The range specified, 2222-2222, conflicts with rule Rule["), "{e}");
    let mut udp = pf("2222", "22");
    udp[2] = ("protocol", "udp");
    cs.run("createPortForwardingRule", &udp).await;
    let e = cs.err("createPortForwardingRule", &pf("0", "22"), 431).await;
    assert_eq!(e["errortext"], "publicPort is an invalid value: 0");
    // Static NAT and port forwarding exclude each other.
    let e = cs.err("enableStaticNat", &[("ipaddressid", &ipid), ("virtualmachineid", &vmid)], 537).await;
    assert!(s(&e["errortext"]).starts_with("There is already firewall rule specified for the ip address id="));
    assert_eq!(cs.items("listPortForwardingRules", &[("ipaddressid", &ipid)], "portforwardingrule").await.len(), 2);
    cs.run("deletePortForwardingRule", &[("id", &rid)]).await;
    assert_eq!(cs.items("listPortForwardingRules", &[], "portforwardingrule").await.len(), 1);
    assert!(
        cs.items("listFirewallRules", &[("ipaddressid", &ipid)], "firewallrule")
            .await
            .iter()
            .all(|f| f["protocol"] == "udp")
    );

    // Ingress firewall rules.
    let f = cs
        .run(
            "createFirewallRule",
            &[
                ("ipaddressid", &ipid),
                ("protocol", "tcp"),
                ("startport", "80"),
                ("endport", "90"),
                ("cidrlist", "10.0.0.0/8"),
            ],
        )
        .await["firewallrule"]
        .clone();
    assert_eq!(f["cidrlist"], "10.0.0.0/8");
    let e = cs.err("createFirewallRule", &[("ipaddressid", &ipid), ("protocol", "all")], 431).await;
    assert!(s(&e["errortext"]).starts_with("Protocol all is not supported in zone"));
    let e = cs
        .err(
            "createFirewallRule",
            &[("ipaddressid", &ipid), ("protocol", "tcp"), ("startport", "90"), ("endport", "80")],
            431,
        )
        .await;
    assert_eq!(e["errortext"], "Start port can't be bigger than end port");
    cs.run("createFirewallRule", &[("ipaddressid", &ipid), ("protocol", "icmp")]).await;
    let e = cs.err("createFirewallRule", &[("ipaddressid", &ipid), ("protocol", "icmp")], 431).await;
    assert!(s(&e["errortext"]).starts_with("New rule conflicts with existing rule: Rule["));
    cs.run("deleteFirewallRule", &[("id", &s(&f["id"]))]).await;

    // Egress rules on the isolated network.
    let eg = cs
        .run(
            "createEgressFirewallRule",
            &[("networkid", &net), ("protocol", "all"), ("cidrlist", "10.1.1.0/24"), ("destcidrlist", "0.0.0.0/0")],
        )
        .await["firewallrule"]
        .clone();
    assert_eq!(eg["traffictype"], "Egress");
    // Same source and destination CIDRs, protocol, no ports: a conflict (with other destination
    // CIDRs it would not be).
    let e = cs
        .err(
            "createEgressFirewallRule",
            &[("networkid", &net), ("protocol", "all"), ("destcidrlist", "0.0.0.0/0")],
            537,
        )
        .await;
    assert!(s(&e["errortext"]).contains("with protocol = all and no ports"), "{e}");
    assert_eq!(cs.items("listEgressFirewallRules", &[("networkid", &net)], "firewallrule").await.len(), 1);
    cs.run("deleteEgressFirewallRule", &[("id", &s(&eg["id"]))]).await;
    assert!(cs.items("listEgressFirewallRules", &[], "firewallrule").await.is_empty());
    // Bob sees none of it; releasing the address removes its rules.
    let bob = Cs::of(&h, "bob");
    assert!(bob.items("listPortForwardingRules", &[], "portforwardingrule").await.is_empty());
    bob.err("listFirewallRules", &[("ipaddressid", &ipid)], 531).await;
    cs.run("disassociateIpAddress", &[("id", &ipid)]).await;
    assert!(cs.items("listPortForwardingRules", &[], "portforwardingrule").await.is_empty());
    assert!(cs.items("listFirewallRules", &[], "firewallrule").await.is_empty());
}

#[tokio::test]
async fn site_to_site_vpn_private_gateways_and_static_routes() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vpc = create_vpc(&cs, "s2s", "10.30.0.0/16").await;
    let vid = s(&vpc["id"]);
    // Customer gateways: IKE/ESP policies, lifetimes, CIDRs, duplicates.
    let cg_p = |name: &'static str, gw: &'static str, cidr: &'static str| {
        vec![
            ("name", name),
            ("gateway", gw),
            ("cidrlist", cidr),
            ("ipsecpsk", "s3cret"),
            ("ikepolicy", "aes256-sha256;modp2048"),
            ("esppolicy", "aes256-sha256"),
        ]
    };
    let cg = cs.run("createVpnCustomerGateway", &cg_p("office", "198.51.100.7", "172.16.0.0/16")).await["vpncustomergateway"].clone();
    assert_eq!(
        (cg["ikelifetime"].clone(), cg["esplifetime"].clone(), cg["dpd"].clone()),
        (86400.into(), 3600.into(), false.into())
    );
    let cgid = s(&cg["id"]);
    let e = cs.err("createVpnCustomerGateway", &cg_p("office", "198.51.100.8", "172.17.0.0/16"), 431).await;
    assert_eq!(e["errortext"], "The customer gateway with name office already existed!");
    let mut bad = cg_p("x", "198.51.100.9", "172.18.0.0/16");
    bad[4] = ("ikepolicy", "rot13-sha1");
    let e = cs.err("createVpnCustomerGateway", &bad, 431).await;
    assert_eq!(
        e["errortext"],
        "The customer gateway IKE policy rot13-sha1 is invalid!  Verify the required Diffie Hellman (DH) group is specified."
    );
    // strongSwan needs a DH group in every IKE proposal; ESP may go without (no PFS).
    let mut bad = cg_p("x", "198.51.100.9", "172.18.0.0/16");
    bad[4] = ("ikepolicy", "aes128-sha1");
    cs.err("createVpnCustomerGateway", &bad, 431).await;
    let mut bad = cg_p("x", "198.51.100.9", "172.18.0.0/16,172.18.1.0/24");
    bad[1] = ("gateway", "vpn.example.org");
    let e = cs.err("createVpnCustomerGateway", &bad, 431).await;
    assert_eq!(
        e["errortext"],
        "The subnet of customer gateway 172.18.0.0/16 is overlapped with another subnet 172.18.1.0/24 of customer gateway!"
    );
    let mut bad = cg_p("x", "198.51.100.9", "172.18.0.0/16");
    bad.push(("ikelifetime", "90000"));
    let e = cs.err("createVpnCustomerGateway", &bad, 431).await;
    assert_eq!(e["errortext"], "The IKE lifetime 90000 of vpn connection is invalid!");
    let overlap =
        cs.run("createVpnCustomerGateway", &cg_p("clash", "198.51.100.10", "10.30.5.0/24")).await["vpncustomergateway"]
            .clone();

    // One VPN gateway per VPC, with the VPC's source NAT address.
    let vg = cs.run("createVpnGateway", &[("vpcid", &vid)]).await["vpngateway"].clone();
    let snat = cs.items("listPublicIpAddresses", &[("vpcid", &vid), ("issourcenat", "true")], "publicipaddress").await;
    assert_eq!(vg["publicip"], snat[0]["ipaddress"]);
    let e = cs.err("createVpnGateway", &[("vpcid", &vid)], 431).await;
    assert!(s(&e["errortext"]).starts_with("The VPN gateway of VPC"));
    let vgid = s(&vg["id"]);

    // Connections: Pending -> Connected (passive: Disconnected); reset; overlap refused.
    let e = cs
        .err("createVpnConnection", &[("s2svpngatewayid", &vgid), ("s2scustomergatewayid", &s(&overlap["id"]))], 431)
        .await;
    assert!(s(&e["errortext"]).contains("is overlapped with VPC cidr 10.30.0.0/16"), "{e}");
    let c = cs.run("createVpnConnection", &[("s2svpngatewayid", &vgid), ("s2scustomergatewayid", &cgid)]).await["vpnconnection"].clone();
    assert_eq!(c["state"], "Connected");
    assert_eq!(c["gateway"], "198.51.100.7");
    assert_eq!(c["cidrlist"], "172.16.0.0/16");
    let e = cs.err("createVpnConnection", &[("s2svpngatewayid", &vgid), ("s2scustomergatewayid", &cgid)], 431).await;
    assert!(s(&e["errortext"]).ends_with("already existed!"));
    let r = cs.run("resetVpnConnection", &[("id", &s(&c["id"]))]).await;
    assert_eq!(r["vpnconnection"]["state"], "Connected");
    assert_eq!(cs.items("listVpnConnections", &[("vpcid", &vid)], "vpnconnection").await.len(), 1);
    // A remote subnet used by another connection of the gateway is refused; at most 4 connections.
    let clash = cs.run("createVpnCustomerGateway", &cg_p("clash2", "198.51.100.20", "172.16.8.0/24")).await
        ["vpncustomergateway"]["id"]
        .clone();
    let e =
        cs.err("createVpnConnection", &[("s2svpngatewayid", &vgid), ("s2scustomergatewayid", &s(&clash))], 431).await;
    assert!(s(&e["errortext"]).starts_with("The new connection's remote subnet 172.16.8.0/24 is overlapped"), "{e}");
    let mut extra = Vec::new();
    for (i, (ip, cidr)) in [
        ("198.51.100.21", "172.22.0.0/16"),
        ("198.51.100.22", "172.23.0.0/16"),
        ("198.51.100.23", "172.24.0.0/16"),
        ("198.51.100.24", "172.25.0.0/16"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = ["n1", "n2", "n3", "n4"][i];
        let g = cs.run("createVpnCustomerGateway", &cg_p(name, ip, cidr)).await["vpncustomergateway"]["id"].clone();
        let params = [("s2svpngatewayid", vgid.as_str()), ("s2scustomergatewayid", g.as_str().unwrap_or_default())];
        if i < 3 {
            extra.push((s(&cs.run("createVpnConnection", &params).await["vpnconnection"]["id"]), s(&g)));
        } else {
            let e = cs.err("createVpnConnection", &params, 431).await;
            assert_eq!(e["errortext"], "There are too many VPN connections with current VPN gateway! The limit is 4");
            cs.run("deleteVpnCustomerGateway", &[("id", &s(&g))]).await;
        }
    }
    for (conn, g) in extra {
        cs.run("deleteVpnConnection", &[("id", &conn)]).await;
        cs.run("deleteVpnCustomerGateway", &[("id", &g)]).await;
    }
    cs.run("deleteVpnCustomerGateway", &[("id", &s(&clash))]).await;
    // Updating the customer gateway restarts its connection; a bad value fails the job (the
    // checks run in the job, as CloudStack's updateCustomerGateway does).
    let mut up = cg_p("office", "198.51.100.7", "172.16.0.0/16,172.21.0.0/16");
    up.push(("id", &cgid));
    let u = cs.run("updateVpnCustomerGateway", &up).await;
    assert_eq!(u["vpncustomergateway"]["cidrlist"], "172.16.0.0/16,172.21.0.0/16");
    let conns = cs.items("listVpnConnections", &[("vpcid", &vid)], "vpnconnection").await;
    assert_eq!(
        (conns[0]["state"].clone(), conns[0]["cidrlist"].clone()),
        ("Connected".into(), "172.16.0.0/16,172.21.0.0/16".into())
    );
    up[4] = ("ikepolicy", "aes128-sha1");
    let j = cs.ok("updateVpnCustomerGateway", &up).await;
    let j = cs.wait(&s(&j["jobid"])).await;
    assert_eq!((j["jobstatus"].clone(), j["jobresult"]["errorcode"].clone()), (2.into(), 431.into()), "{j}");
    // In use: neither gateway can go (the jobs fail).
    for (cmd, id) in [("deleteVpnCustomerGateway", &cgid), ("deleteVpnGateway", &vgid)] {
        let j = cs.ok(cmd, &[("id", id)]).await;
        let j = cs.wait(&s(&j["jobid"])).await;
        assert_eq!(j["jobresult"]["errorcode"], 431, "{cmd}: {j}");
        assert!(s(&j["jobresult"]["errortext"]).contains("still related VPN connections"), "{j}");
    }
    let bob = Cs::of(&h, "bob");
    bob.err("deleteVpnConnection", &[("id", &s(&c["id"]))], 531).await;
    assert!(bob.items("listVpnCustomerGateways", &[], "vpncustomergateway").await.is_empty());
    cs.run("deleteVpnConnection", &[("id", &s(&c["id"]))]).await;
    cs.run("deleteVpnGateway", &[("id", &vgid)]).await;
    cs.run("deleteVpnCustomerGateway", &[("id", &cgid)]).await;
    assert_eq!(cs.items("listVpnCustomerGateways", &[], "vpncustomergateway").await.len(), 1);

    // Private gateways are for root admins; static routes for the VPC's owner.
    let pg = [
        ("vpcid", vid.as_str()),
        ("gateway", "10.99.0.1"),
        ("ipaddress", "10.99.0.5"),
        ("netmask", "255.255.255.0"),
        ("vlan", "999"),
    ];
    cs.err("createPrivateGateway", &pg, 401).await;
    let admin = Cs::of(&h, "admin");
    let g = admin.run("createPrivateGateway", &pg).await["privategateway"].clone();
    assert_eq!(g["state"], "Ready");
    assert_eq!(g["aclid"], ACL_DEFAULT_DENY);
    let gid = s(&g["id"]);
    assert_eq!(cs.items("listPrivateGateways", &[("vpcid", &vid)], "privategateway").await.len(), 1);
    let e = cs.err("createStaticRoute", &[("gatewayid", &gid), ("cidr", "10.30.9.0/24")], 431).await;
    assert_eq!(e["errortext"], "CIDR should be outside of VPC cidr 10.30.0.0/16");
    let r =
        cs.run("createStaticRoute", &[("gatewayid", &gid), ("cidr", "192.168.40.0/24")]).await["staticroute"].clone();
    assert_eq!(r["state"], "Active");
    assert_eq!(r["vpcid"], vid.as_str());
    cs.err("createStaticRoute", &[("gatewayid", &gid), ("cidr", "192.168.40.128/25")], 537).await;
    cs.run(
        "createTags",
        &[("resourcetype", "StaticRoute"), ("resourceids", &s(&r["id"])), ("tags[0].key", "k"), ("tags[0].value", "v")],
    )
    .await;
    assert_eq!(cs.items("listStaticRoutes", &[("tags[0].key", "k")], "staticroute").await.len(), 1);
    bob.err("deleteStaticRoute", &[("id", &s(&r["id"]))], 531).await;
    admin.err("deletePrivateGateway", &[("id", &gid)], 431).await;
    cs.run("deleteStaticRoute", &[("id", &s(&r["id"]))]).await;
    admin.run("deletePrivateGateway", &[("id", &gid)]).await;
    assert!(cs.items("listPrivateGateways", &[], "privategateway").await.is_empty());
}

/// Tags on ACL rules, VPN connections and NICs, listed by listTags and shown on the objects.
#[tokio::test]
async fn tags_on_acl_rules_vpn_connections_and_nics() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vpc = create_vpc(&cs, "tagged", "10.40.0.0/16").await;
    let vid = s(&vpc["id"]);
    let list = cs.run("createNetworkACLList", &[("name", "l"), ("vpcid", &vid)]).await["networkacllist"]["id"].clone();
    let rule =
        cs.run("createNetworkACL", &[("aclid", &s(&list)), ("protocol", "udp")]).await["networkacl"]["id"].clone();
    let t = tier(&cs, &vid, "t", "10.40.1.1").await;
    let vm = deploy(&cs, &[("zoneid", ZONE3), ("networkids", &s(&t["id"]))]).await;
    let nic = s(&vm["nic"][0]["id"]);
    let vg = cs.run("createVpnGateway", &[("vpcid", &vid)]).await["vpngateway"]["id"].clone();
    let cg = cs
        .run(
            "createVpnCustomerGateway",
            &[
                ("gateway", "203.0.113.9"),
                ("cidrlist", "172.20.0.0/16"),
                ("ipsecpsk", "k"),
                ("ikepolicy", "aes128-sha1;modp1536"),
                ("esppolicy", "aes128-sha1"),
            ],
        )
        .await["vpncustomergateway"]["id"]
        .clone();
    let conn = cs.run("createVpnConnection", &[("s2svpngatewayid", &s(&vg)), ("s2scustomergatewayid", &s(&cg))]).await
        ["vpnconnection"]["id"]
        .clone();
    for (rtype, id) in [("NetworkACL", s(&rule)), ("VpnConnection", s(&conn)), ("Nic", nic.clone())] {
        cs.run(
            "createTags",
            &[("resourcetype", rtype), ("resourceids", &id), ("tags[0].key", "team"), ("tags[0].value", "net")],
        )
        .await;
        let tags = cs.items("listTags", &[("resourcetype", rtype), ("key", "team")], "tag").await;
        assert_eq!(tags.len(), 1, "{rtype}");
        assert_eq!(tags[0]["resourceid"], id.as_str());
    }
    let r = cs.items("listNetworkACLs", &[("aclid", &s(&list)), ("tags[0].key", "team")], "networkacl").await;
    assert_eq!(r[0]["tags"][0]["value"], "net");
    let c = cs.items("listVpnConnections", &[("id", &s(&conn))], "vpnconnection").await;
    assert_eq!(c[0]["tags"][0]["key"], "team");
    // Default lists' rules belong to no account: not taggable by users.
    let d = cs.items("listNetworkACLs", &[("aclid", ACL_DEFAULT_ALLOW)], "networkacl").await;
    cs.err(
        "createTags",
        &[
            ("resourcetype", "NetworkACL"),
            ("resourceids", &s(&d[0]["id"])),
            ("tags[0].key", "k"),
            ("tags[0].value", "v"),
        ],
        431,
    )
    .await;
    // Another account cannot tag them.
    let bob = Cs::of(&h, "bob");
    bob.err(
        "createTags",
        &[("resourcetype", "Nic"), ("resourceids", &nic), ("tags[0].key", "k"), ("tags[0].value", "v")],
        531,
    )
    .await;
}

/// CreateNetworkACLCmd's getters, which run before the service's checks: protocol number 1 is
/// icmp (with ICMP type and code -1), the end port defaults to the start port, no cidrlist is
/// 0.0.0.0/0 and ::/0, and an unknown traffic type fails before anything else. An update takes
/// an unknown traffic type as not given.
#[tokio::test]
async fn network_acl_command_defaults() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vpc = create_vpc(&cs, "v", "10.11.0.0/16").await;
    let list = cs.run("createNetworkACLList", &[("name", "l"), ("vpcid", &s(&vpc["id"]))]).await;
    let lid = s(&list["networkacllist"]["id"]);
    let icmp = cs.run("createNetworkACL", &[("aclid", &lid), ("protocol", " 1 ")]).await["networkacl"].clone();
    assert_eq!(
        (icmp["protocol"].clone(), icmp["icmptype"].clone(), icmp["icmpcode"].clone()),
        ("icmp".into(), (-1).into(), (-1).into())
    );
    assert_eq!(icmp["cidrlist"], "0.0.0.0/0,::/0");
    let tcp =
        cs.run("createNetworkACL", &[("aclid", &lid), ("protocol", "tcp"), ("startport", "22")]).await["networkacl"]
            .clone();
    assert_eq!((tcp["startport"].clone(), tcp["endport"].clone()), ("22".into(), "22".into()));
    // The traffic type is checked before the list: even a default list answers with it.
    let e = cs
        .err("createNetworkACL", &[("aclid", ACL_DEFAULT_ALLOW), ("protocol", "tcp"), ("traffictype", "up")], 431)
        .await;
    assert_eq!(e["errortext"], "Invalid traffic type up");
    let u = cs
        .run("updateNetworkACLItem", &[("id", &s(&tcp["id"])), ("traffictype", "up"), ("endport", "23")])
        .await["networkacl"]
        .clone();
    assert_eq!((u["traffictype"].clone(), u["endport"].clone()), ("Ingress".into(), "23".into()));
}
