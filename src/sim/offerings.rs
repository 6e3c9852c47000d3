//! The built-in network and VPC offerings and the two default network ACL lists. CloudStack creates these at installation
//! (ConfigurationServerImpl.createDefaultNetworkOfferings, VpcManagerImpl.configure), so they
//! are not part of the seed; their uuids are fixed here so tests and the gateway can name them.
//! Services per offering follow those classes (docs/simulator.md, "Networking").

use super::model::{AclItem, AclList, Model, NetworkOffering, VpcOffering};

/// NetworkACL.DEFAULT_ALLOW / DEFAULT_DENY: ACL lists every VPC can use; fixed uuids.
pub const DEFAULT_ALLOW: (&str, &str) = ("b3d6a8f0-3c2e-4e1a-9f5d-7a2b4c6e8d02", "default_allow");
pub const DEFAULT_DENY: (&str, &str) = ("b3d6a8f0-3c2e-4e1a-9f5d-7a2b4c6e8d01", "default_deny");

pub const SHARED_SG: &str = "DefaultSharedNetworkOfferingWithSGService";
pub const ISOLATED_SOURCE_NAT: &str = "DefaultIsolatedNetworkOfferingWithSourceNatService";
pub const VPC_TIER: &str = "DefaultIsolatedNetworkOfferingForVpcNetworks";
pub const VPC_TIER_NO_LB: &str = "DefaultIsolatedNetworkOfferingForVpcNetworksNoLB";
pub const DEFAULT_VPC: &str = "Default VPC offering";
pub const REDUNDANT_VPC: &str = "Redundant VPC offering";

/// (uuid, name, display text, guest type, for VPC, availability, services).
type NetRow = (&'static str, &'static str, &'static str, &'static str, bool, &'static str, &'static [&'static str]);

const NETWORK_OFFERINGS: [NetRow; 4] = [
    (
        "6f2c2a6e-52b1-4d0e-9a3c-0c1d5e7f9a01",
        SHARED_SG,
        "Offering for Shared Security group enabled networks",
        "Shared",
        false,
        "Optional",
        &["Dhcp", "Dns", "UserData", "SecurityGroup"],
    ),
    (
        "6f2c2a6e-52b1-4d0e-9a3c-0c1d5e7f9a02",
        ISOLATED_SOURCE_NAT,
        "Offering for Isolated networks with Source Nat service enabled",
        "Isolated",
        false,
        "Required",
        &["Dhcp", "Dns", "UserData", "Firewall", "Gateway", "Lb", "SourceNat", "StaticNat", "PortForwarding", "Vpn"],
    ),
    (
        "6f2c2a6e-52b1-4d0e-9a3c-0c1d5e7f9a03",
        VPC_TIER,
        "Offering for Isolated VPC networks with Source Nat service enabled",
        "Isolated",
        true,
        "Optional",
        &["Dhcp", "Dns", "UserData", "NetworkACL", "Gateway", "Lb", "SourceNat", "StaticNat", "PortForwarding", "Vpn"],
    ),
    (
        "6f2c2a6e-52b1-4d0e-9a3c-0c1d5e7f9a04",
        VPC_TIER_NO_LB,
        "Offering for Isolated VPC networks with Source Nat service enabled and LB service disabled",
        "Isolated",
        true,
        "Optional",
        &["Dhcp", "Dns", "UserData", "NetworkACL", "Gateway", "SourceNat", "StaticNat", "PortForwarding", "Vpn"],
    ),
];

const VPC_SERVICES: &[&str] =
    &["Dhcp", "Dns", "UserData", "NetworkACL", "PortForwarding", "Lb", "SourceNat", "StaticNat", "Gateway", "Vpn"];

/// (uuid, name, redundant router).
const VPC_OFFERINGS: [(&str, &str, bool); 2] = [
    ("8a1e3c55-0d7b-4f6a-b2c4-1e9f0a7d3b01", DEFAULT_VPC, false),
    ("8a1e3c55-0d7b-4f6a-b2c4-1e9f0a7d3b02", REDUNDANT_VPC, true),
];

/// The provider CloudStack names for a service of an offering.
pub fn provider(service: &str, vpc: bool) -> &'static str {
    match service {
        "SecurityGroup" => "SecurityGroupProvider",
        _ if vpc => "VpcVirtualRouter",
        _ => "VirtualRouter",
    }
}

pub fn install(m: &mut Model, now: &str) {
    for (id, name, text, guest, forvpc, availability, services) in NETWORK_OFFERINGS {
        let s = m.next_seq();
        m.network_offerings.insert(
            s,
            NetworkOffering {
                id: id.into(),
                name: name.into(),
                displaytext: text.into(),
                guestiptype: guest,
                forvpc,
                services,
                availability,
                isdefault: true,
                egressdefaultpolicy: false,
                specifyipranges: guest == "Shared",
                created: now.to_string(),
            },
        );
    }
    // Each default list has an ingress and an egress rule for all traffic (numbers 1 and 2).
    for ((id, name), action, text) in [
        (DEFAULT_DENY, "Deny", "Default Network ACL Deny All"),
        (DEFAULT_ALLOW, "Allow", "Default Network ACL Allow All"),
    ] {
        let s = m.next_seq();
        m.acls.insert(
            s,
            AclList { id: id.into(), name: name.into(), description: text.into(), vpc: None, display: true },
        );
        for (number, traffic) in [(1, "Ingress"), (2, "Egress")] {
            let i = m.next_seq();
            m.acl_items.insert(
                i,
                AclItem {
                    id: super::seed::new_uuid(),
                    list: s,
                    number,
                    action,
                    protocol: "all".into(),
                    startport: None,
                    endport: None,
                    icmptype: None,
                    icmpcode: None,
                    cidrs: vec!["0.0.0.0/0".into()],
                    traffictype: traffic,
                    reason: None,
                    display: true,
                    tags: Vec::new(),
                },
            );
        }
    }
    for (id, name, redundant) in VPC_OFFERINGS {
        let s = m.next_seq();
        m.vpc_offerings.insert(
            s,
            VpcOffering {
                id: id.into(),
                name: name.into(),
                displaytext: name.into(),
                services: VPC_SERVICES,
                isdefault: !redundant,
                redundant,
                created: now.to_string(),
            },
        );
    }
}
