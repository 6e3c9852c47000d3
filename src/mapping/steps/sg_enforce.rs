//! Enforcing VPC security groups with tier ACL lists (docs/vpc.md "VPC security groups:
//! enforcement").
//!
//! CloudStack VPC tiers have no security groups: the tier's network ACL list is what the VPC
//! router applies, and its items have a source/destination CIDR but no address on the tier's
//! side. So a tier with attached interfaces is guarded by a list the gateway makes (name
//! `ec2bridge-sg`): in CloudStack's first-match order, per direction, the EC2 network ACL of the
//! subnet (its entries in order) where each `allow` entry is narrowed to the UNION of the rules
//! of the groups of the interfaces living in the tier, followed by a deny of what that entry
//! matched; a deny of everything closes each direction. A rule naming a group stands for the
//! addresses (/32) of the interfaces holding that group. A tier without attached interfaces is
//! on its EC2 network ACL's list itself.
//!
//! The list's description names the tier, the EC2 network ACL behind it and a digest of its
//! items, so any gateway recomputes from state alone (CloudStack + the store): an unchanged
//! digest changes nothing; a changed one makes a new list, moves the tier onto it
//! (`replaceNetworkACLList`) and removes the old list. A list that cannot be made whole is
//! removed again; lists no tier uses are swept. `DescribeNetworkAcls` never shows these lists:
//! it shows the EC2 network ACL named in the description as the subnet's association.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::super::exec::Ctx;
use super::super::expr::scalar_text;
use super::common::run_job;
use super::network_acls::{Item, delete_list, make_list};
use super::vpc_objects::Block;
use crate::base::Ec2Error;
use crate::ids::{self, Kind};

/// The name of the lists the gateway makes to enforce groups.
pub const LIST_NAME: &str = "ec2bridge-sg";
/// How often a recompute re-reads the state after changing a tier (another gateway may have
/// changed it meanwhile); the last pass must find nothing to do.
const PASSES: usize = 4;

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).filter(|x| !x.is_null()).map(scalar_text).filter(|x| !x.is_empty())
}

fn p(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

/// Is this CloudStack list one the gateway made to enforce groups?
pub fn is_enforcement(list: &Value) -> bool {
    s(list, "name").as_deref() == Some(LIST_NAME)
}

fn field(desc: &str, key: &str) -> Option<String> {
    desc.split(';').filter_map(|f| f.trim().split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v.to_string())
}

/// The EC2 network ACL (list uuid) an enforcement list stands for.
pub fn nacl_of(list: &Value) -> Option<String> {
    field(&s(list, "description")?, "nacl")
}

fn tier_of(list: &Value) -> Option<String> {
    field(&s(list, "description")?, "tier")
}

fn description(tier: &str, nacl: &str, digest: u64) -> String {
    format!("ec2bridge security groups; tier={tier}; nacl={nacl}; digest={digest:016x}")
}

// ---- the rules ---------------------------------------------------------------------------------

/// What an ACL item or a group rule matches (IPv4 only).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Match {
    /// `all`, `tcp`, `udp`, `icmp` or a protocol number.
    proto: String,
    /// tcp/udp ports; None is every port.
    ports: Option<(i64, i64)>,
    /// icmp type and code (-1 = any).
    icmp: Option<(i64, i64)>,
    cidrs: Vec<Block>,
}

fn proto_name(p: &str) -> String {
    match p.trim().to_ascii_lowercase().as_str() {
        "-1" | "all" | "" => "all".into(),
        "6" | "tcp" => "tcp".into(),
        "17" | "udp" => "udp".into(),
        "1" | "icmp" => "icmp".into(),
        other => other.to_string(),
    }
}

fn norm_ports(r: Option<(i64, i64)>) -> Option<(i64, i64)> {
    r.filter(|(a, b)| !(*a <= 1 && *b >= 65535))
}

impl Match {
    fn everything() -> Match {
        Match { proto: "all".into(), ports: None, icmp: None, cidrs: vec![Block { base: 0, prefix: 0 }] }
    }

    fn is_everything(&self) -> bool {
        self.proto == "all" && self.cidrs.iter().any(|b| b.prefix == 0)
    }

    /// A CloudStack ACL item's match; None when it matches no IPv4 traffic.
    fn of_item(it: &Value) -> Option<Match> {
        let proto = proto_name(&s(it, "protocol").unwrap_or_default());
        let num = |k: &str| s(it, k).and_then(|x| x.parse::<i64>().ok());
        let ports = match proto.as_str() {
            "tcp" | "udp" => match (num("startport"), num("endport")) {
                (Some(a), b) => norm_ports(Some((a, b.unwrap_or(a)))),
                _ => None,
            },
            _ => None,
        };
        let icmp = (proto == "icmp").then(|| (num("icmptype").unwrap_or(-1), num("icmpcode").unwrap_or(-1)));
        let cidrs: Vec<Block> = s(it, "cidrlist")
            .unwrap_or_else(|| "0.0.0.0/0".into())
            .split(',')
            .filter_map(|c| Block::parse(c.trim()))
            .collect();
        (!cidrs.is_empty()).then_some(Match { proto, ports, icmp, cidrs })
    }

    /// A group rule (EC2 atom) with its peers; None when it allows nothing CloudStack can say.
    fn of_atom(atom: &Value, cidrs: Vec<Block>) -> Option<Match> {
        let proto = proto_name(&s(atom, "protocol").unwrap_or_default());
        let num = |k: &str| atom.get(k).and_then(Value::as_i64);
        let mut ports = None;
        let mut icmp = None;
        match proto.as_str() {
            "tcp" | "udp" => {
                let (from, to) = (num("from").unwrap_or(0), num("to").unwrap_or(65535));
                if to < 1 {
                    return None; // port 0 carries nothing
                }
                ports = norm_ports(Some((from.max(1), to)));
            }
            "icmp" => {
                let (t, c) = (num("from").unwrap_or(-1), num("to").unwrap_or(-1));
                // CloudStack takes ICMP codes -1 and 0..16: a higher code widens to every code.
                icmp = Some((t, if (0..=16).contains(&c) { c } else { -1 }));
            }
            _ => {}
        }
        (!cidrs.is_empty()).then_some(Match { proto, ports, icmp, cidrs })
    }

    /// What both match (None: nothing). CIDR blocks are contained in one another or disjoint.
    fn meet(&self, o: &Match) -> Option<Match> {
        let (proto, ports, icmp) = if self.proto == "all" {
            (o.proto.clone(), o.ports, o.icmp)
        } else if o.proto == "all" {
            (self.proto.clone(), self.ports, self.icmp)
        } else if self.proto != o.proto {
            return None;
        } else {
            let ports = match (self.ports, o.ports) {
                (None, x) | (x, None) => x,
                (Some((a, b)), Some((c, d))) => {
                    let (lo, hi) = (a.max(c), b.min(d));
                    if lo > hi {
                        return None;
                    }
                    norm_ports(Some((lo, hi)))
                }
            };
            let icmp = match (self.icmp, o.icmp) {
                (Some((t1, c1)), Some((t2, c2))) => {
                    let one = |a: i64, b: i64| match (a, b) {
                        (-1, x) | (x, -1) => Some(x),
                        (x, y) if x == y => Some(x),
                        _ => None,
                    };
                    Some((one(t1, t2)?, one(c1, c2)?))
                }
                (x, y) => x.or(y),
            };
            (self.proto.clone(), ports, icmp)
        };
        let mut cidrs = BTreeSet::new();
        for a in &self.cidrs {
            for b in &o.cidrs {
                if a.within(b) {
                    cidrs.insert(*a);
                } else if b.within(a) {
                    cidrs.insert(*b);
                }
            }
        }
        if cidrs.is_empty() {
            return None;
        }
        Some(Match { proto, ports, icmp, cidrs: cidrs.into_iter().collect() })
    }
}

/// One entry of an EC2 network ACL, as CloudStack holds it.
#[derive(Debug, Clone)]
struct Entry {
    allow: bool,
    m: Match,
}

/// The items of one direction: the network ACL's entries in order, each `allow` narrowed to the
/// group rules and closed by a deny of what it matched; a final deny of everything.
fn direction(entries: &[Entry], rules: &[Match]) -> Vec<(bool, Match)> {
    let mut out: Vec<(bool, Match)> = Vec::new();
    for e in entries {
        if e.allow {
            for r in rules {
                if let Some(m) = e.m.meet(r) {
                    out.push((true, m));
                }
            }
        }
        out.push((false, e.m.clone()));
        if e.m.is_everything() {
            return out;
        }
    }
    out.push((false, Match::everything()));
    out
}

/// Protocol, ports, ICMP type and code.
type Key = (String, Option<(i64, i64)>, Option<(i64, i64)>);

/// Group rules with the same protocol and ports in one item (their CIDRs together).
fn merge(rules: Vec<Match>) -> Vec<Match> {
    let mut by: BTreeMap<Key, BTreeSet<Block>> = BTreeMap::new();
    for r in rules {
        by.entry((r.proto, r.ports, r.icmp)).or_default().extend(r.cidrs);
    }
    // A block inside another of the same key adds nothing.
    by.into_iter()
        .map(|((proto, ports, icmp), set)| {
            let all: Vec<Block> = set.into_iter().collect();
            let cidrs = all.iter().filter(|b| !all.iter().any(|o| o != *b && b.within(o))).cloned().collect::<Vec<_>>();
            Match { proto, ports, icmp, cidrs }
        })
        .collect()
}

/// The items of a tier's list: ingress then egress, numbered from 1.
fn tier_items(nacl_items: &[Value], ingress_rules: Vec<Match>, egress_rules: Vec<Match>) -> Vec<Item> {
    let mut sorted: Vec<&Value> = nacl_items.iter().collect();
    sorted.sort_by_key(|i| s(i, "number").and_then(|n| n.parse::<i64>().ok()).unwrap_or(i64::MAX));
    let of = |egress: bool| -> Vec<Entry> {
        sorted
            .iter()
            .filter(|i| s(i, "traffictype").is_some_and(|t| t.eq_ignore_ascii_case("egress")) == egress)
            .filter_map(|i| {
                Match::of_item(i)
                    .map(|m| Entry { allow: s(i, "action").is_some_and(|a| a.eq_ignore_ascii_case("allow")), m })
            })
            .collect()
    };
    let ingress = of(false);
    let mut egress = of(true);
    // CloudStack's router lets all egress through a list without egress items.
    if !nacl_items.iter().any(|i| s(i, "traffictype").is_some_and(|t| t.eq_ignore_ascii_case("egress"))) {
        egress.push(Entry { allow: true, m: Match::everything() });
    }
    let mut out = Vec::new();
    let mut n = 0;
    for (eg, entries, rules) in [(false, ingress, merge(ingress_rules)), (true, egress, merge(egress_rules))] {
        for (allow, m) in direction(&entries, &rules) {
            n += 1;
            out.push(Item {
                number: n,
                egress: eg,
                protocol: m.proto.clone(),
                allow,
                cidr: m.cidrs.iter().map(Block::to_string).collect::<Vec<_>>().join(","),
                ports: m.ports,
                icmp: m.icmp,
            });
        }
    }
    out
}

/// FNV-1a: a digest that stays the same across gateways and versions.
fn digest(items: &[Item]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for it in items {
        for (k, v) in it.params() {
            for b in k.bytes().chain([b'=']).chain(v.bytes()).chain([b';']) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h ^= u64::from(b'\n');
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

// ---- the state ---------------------------------------------------------------------------------

/// An attached interface: its tier (EC2 subnet id), addresses and groups.
pub struct Member {
    /// The VM it is attached to (CloudStack uuid).
    pub instance: String,
    pub subnet: String,
    pub addresses: Vec<String>,
    pub groups: Vec<String>,
}

fn host(ip: &str) -> Option<Block> {
    Block::parse(&format!("{ip}/32"))
}

/// The group rules guarding a tier: (ingress, egress) of every group of its members.
fn tier_rules(members: &[&Member], all: &[Member], groups: &[crate::objects::Record]) -> (Vec<Match>, Vec<Match>) {
    let wanted: BTreeSet<&String> = members.iter().flat_map(|m| m.groups.iter()).collect();
    let holders = |g: &str| -> Vec<Block> {
        let set: BTreeSet<Block> = all
            .iter()
            .filter(|m| m.groups.iter().any(|x| x == g))
            .flat_map(|m| m.addresses.iter().filter_map(|a| host(a)))
            .collect();
        set.into_iter().collect()
    };
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    for gid in wanted {
        let Some(g) = groups.iter().find(|r| r.id == *gid) else { continue };
        for (dir, out) in [("ingress", &mut ingress), ("egress", &mut egress)] {
            for atom in g.doc["rules"][dir].as_array().into_iter().flatten() {
                let peers = match (s(atom, "cidr"), s(atom, "group")) {
                    (Some(c), _) => Block::parse(&c).into_iter().collect(),
                    (None, Some(src)) => holders(&src),
                    _ => Vec::new(),
                };
                if let Some(m) = Match::of_atom(atom, peers) {
                    out.push(m);
                }
            }
        }
    }
    (ingress, egress)
}

/// Recompute the lists of the tiers of one VPC (`vpc`: CloudStack uuid; None: every VPC of
/// the caller). `assoc`: (tier uuid, list uuid) makes that tier's EC2 network ACL the given one
/// (ReplaceNetworkAclAssociation) and recomputes that tier only. Idempotent: a tier whose list
/// already holds what the state asks for is left alone.
pub async fn sync(ctx: &Ctx<'_>, vpc: Option<&str>, assoc: Option<(&str, &str)>) -> Result<(), Ec2Error> {
    sync_all(ctx, vpc, assoc, &[]).await
}

/// After TerminateInstances: every VPC's tiers, the terminated VMs (`gone`, CloudStack uuids)
/// no longer counted whatever state CloudStack shows while it destroys them. A failure is
/// logged: the tiers keep their previous lists until the next change recomputes them.
pub async fn after_terminate(ctx: &Ctx<'_>, gone: &[String]) {
    if let Err(e) = sync_all(ctx, None, None, gone).await {
        tracing::warn!(error = %e.message, "could not recompute the tier lists after a termination");
    }
}

async fn sync_all(
    ctx: &Ctx<'_>,
    vpc: Option<&str>,
    assoc: Option<(&str, &str)>,
    gone: &[String],
) -> Result<(), Ec2Error> {
    for pass in 0..PASSES {
        if !sync_once(ctx, vpc, assoc, gone, pass + 1 == PASSES).await? {
            return Ok(());
        }
    }
    tracing::warn!(vpc = vpc.unwrap_or("*"), "tier ACL lists still changing after several passes");
    Ok(())
}

/// One pass; answers whether it changed a tier.
async fn sync_once(
    ctx: &Ctx<'_>,
    vpc: Option<&str>,
    assoc: Option<(&str, &str)>,
    gone: &[String],
    last: bool,
) -> Result<bool, Ec2Error> {
    let mut scope = vec![p("listall", "true")];
    if let Some(v) = vpc {
        scope.push(p("vpcid", v));
    }
    let tiers: Vec<Value> = ctx
        .list("listNetworks", &scope, "network")
        .await?
        .into_iter()
        .filter(|t| s(t, "vpcid").is_some_and(|v| vpc.is_none_or(|x| x == v)))
        .collect();
    let lists = ctx.list("listNetworkACLLists", &scope, "networkacllist").await?;
    let mine: Vec<&Value> = lists
        .iter()
        .filter(|l| is_enforcement(l) && s(l, "vpcid").is_some_and(|v| vpc.is_none_or(|x| x == v)))
        .collect();
    let mut members = super::eni::attached(ctx).await?;
    // An interface without groups is one whose instance is going (TerminateInstances removed
    // its records first): in a VPC every live instance has at least its VPC's default group.
    members.retain(|m| !gone.contains(&m.instance) && !m.groups.is_empty());
    if mine.is_empty() && members.is_empty() && assoc.is_none() {
        return Ok(false);
    }
    let groups = super::vpc_sg::groups(ctx).await?;
    let mut nacl_items: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut changed = false;
    let mut in_use: BTreeSet<String> = BTreeSet::new();
    for t in &tiers {
        let (Some(tier), Some(vpc_uuid)) = (s(t, "id"), s(t, "vpcid")) else { continue };
        let cur = s(t, "aclid").unwrap_or_default();
        let cur_list = lists.iter().find(|l| s(l, "id").as_deref() == Some(cur.as_str()));
        let cur_is_mine = cur_list.is_some_and(is_enforcement);
        let nacl = match assoc {
            Some((at, list)) if at == tier => list.to_string(),
            Some(_) => {
                in_use.insert(cur);
                continue;
            }
            None if cur_is_mine => cur_list.and_then(nacl_of).unwrap_or_default(),
            None => cur.clone(),
        };
        if nacl.is_empty() {
            in_use.insert(cur);
            continue;
        }
        let subnet = ids::ec2_id(Kind::Subnet, &tier);
        let here: Vec<&Member> = members.iter().filter(|m| m.subnet == subnet).collect();
        if here.is_empty() {
            if cur != nacl {
                let moved =
                    run_job(ctx, "replaceNetworkACLList", &[p("aclid", nacl.clone()), p("networkid", tier.clone())])
                        .await;
                match moved {
                    Ok(_) => changed = true,
                    Err(e) if last => return Err(e),
                    // As below: the next pass sees what another gateway did meanwhile.
                    Err(_) => return Ok(true),
                }
            }
            in_use.insert(nacl);
            continue;
        }
        if !nacl_items.contains_key(&nacl) {
            let items = ctx
                .list("listNetworkACLs", &[p("aclid", nacl.clone()), p("listall", "true")], "networkacl")
                .await?
                .into_iter()
                .filter(|i| s(i, "aclid").is_none_or(|a| a == nacl))
                .collect();
            nacl_items.insert(nacl.clone(), items);
        }
        let (ingress, egress) = tier_rules(&here, &members, &groups);
        let items = tier_items(&nacl_items[&nacl], ingress, egress);
        let desc = description(&tier, &nacl, digest(&items));
        if cur_is_mine && cur_list.and_then(|l| s(l, "description")).as_deref() == Some(desc.as_str()) {
            in_use.insert(cur);
            continue;
        }
        let made = make_list(ctx, &vpc_uuid, LIST_NAME, &desc, &items).await?;
        let new = s(&made, "id").ok_or_else(Ec2Error::internal)?;
        if let Err(e) =
            run_job(ctx, "replaceNetworkACLList", &[p("aclid", new.clone()), p("networkid", tier.clone())]).await
        {
            delete_list(ctx, &new).await;
            if last {
                return Err(e);
            }
            // Another gateway may have changed the tier or swept the list meanwhile: the next
            // pass sees what it did.
            tracing::info!(tier, "a tier list could not be put in place; recomputing");
            return Ok(true);
        }
        tracing::debug!(tier, list = new, items = items.len(), "tier guarded by its groups' rules");
        in_use.insert(new);
        changed = true;
    }
    // Lists no tier uses any more (replaced just now, or left by a gateway that lost a race).
    for l in &mine {
        let Some(id) = s(l, "id") else { continue };
        let tier_gone = tier_of(l).is_some_and(|t| !tiers.iter().any(|x| s(x, "id").as_deref() == Some(t.as_str())));
        if (tier_gone || !in_use.contains(&id))
            && run_job(ctx, "deleteNetworkACLList", &[p("id", id.clone())]).await.is_err()
        {
            tracing::info!(list = id, "an unused tier list could not be removed yet");
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(n: i64, dir: &str, proto: &str, action: &str, cidr: &str, ports: Option<(i64, i64)>) -> Value {
        let mut v = json!({"number": n, "traffictype": dir, "protocol": proto, "action": action, "cidrlist": cidr});
        if let Some((a, b)) = ports {
            v["startport"] = json!(a);
            v["endport"] = json!(b);
        }
        v
    }

    fn rule(proto: &str, ports: Option<(i64, i64)>, cidrs: &[&str]) -> Match {
        Match {
            proto: proto.into(),
            ports,
            icmp: None,
            cidrs: cidrs.iter().map(|c| Block::parse(c).unwrap()).collect(),
        }
    }

    fn shown(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| {
                format!(
                    "{} {} {} {} {} {:?}",
                    i.number,
                    if i.egress { "out" } else { "in" },
                    if i.allow { "allow" } else { "deny" },
                    i.protocol,
                    i.cidr,
                    i.ports
                )
            })
            .collect()
    }

    #[test]
    fn default_acl_gives_the_group_rules_then_deny() {
        let nacl = [
            item(200, "Ingress", "all", "Allow", "0.0.0.0/0", None),
            item(201, "Egress", "all", "Allow", "0.0.0.0/0", None),
            item(65535, "Egress", "all", "Deny", "0.0.0.0/0", None),
        ];
        let items = tier_items(
            &nacl,
            vec![rule("tcp", Some((22, 22)), &["10.0.0.0/8"]), rule("tcp", Some((22, 22)), &["10.1.0.0/16"])],
            vec![rule("all", None, &["0.0.0.0/0"])],
        );
        assert_eq!(
            shown(&items),
            [
                "1 in allow tcp 10.0.0.0/8 Some((22, 22))",
                "2 in deny all 0.0.0.0/0 None",
                "3 out allow all 0.0.0.0/0 None",
                "4 out deny all 0.0.0.0/0 None",
            ]
        );
    }

    #[test]
    fn custom_acl_intersects() {
        let nacl = [
            item(20, "Ingress", "tcp", "Deny", "10.9.0.0/16", Some((1, 65535))),
            item(40, "Ingress", "tcp", "Allow", "10.0.0.0/8", Some((20, 30))),
            item(65535, "Egress", "all", "Deny", "0.0.0.0/0", None),
        ];
        let items = tier_items(
            &nacl,
            vec![rule("tcp", Some((25, 80)), &["10.1.2.3/32", "192.168.0.0/16"]), rule("udp", None, &["0.0.0.0/0"])],
            vec![rule("all", None, &["0.0.0.0/0"])],
        );
        assert_eq!(
            shown(&items),
            [
                "1 in deny tcp 10.9.0.0/16 None",
                "2 in allow tcp 10.1.2.3/32 Some((25, 30))",
                "3 in deny tcp 10.0.0.0/8 Some((20, 30))",
                "4 in deny all 0.0.0.0/0 None",
                "5 out deny all 0.0.0.0/0 None",
            ]
        );
    }

    #[test]
    fn no_egress_items_is_egress_allowed() {
        let nacl = [item(2, "Ingress", "all", "Allow", "0.0.0.0/0", None)];
        let items = tier_items(&nacl, vec![], vec![rule("icmp", None, &["10.0.0.0/8"])]);
        assert_eq!(
            shown(&items),
            ["1 in deny all 0.0.0.0/0 None", "2 out allow icmp 10.0.0.0/8 None", "3 out deny all 0.0.0.0/0 None",]
        );
    }

    #[test]
    fn meet_rules() {
        let a = rule("all", None, &["10.0.0.0/8"]);
        let b = rule("tcp", Some((1, 100)), &["10.0.0.0/24", "11.0.0.0/8"]);
        assert_eq!(a.meet(&b), Some(rule("tcp", Some((1, 100)), &["10.0.0.0/24"])));
        assert_eq!(rule("tcp", None, &["0.0.0.0/0"]).meet(&rule("udp", None, &["0.0.0.0/0"])), None);
        assert_eq!(rule("tcp", Some((1, 5)), &["0.0.0.0/0"]).meet(&rule("tcp", Some((6, 9)), &["0.0.0.0/0"])), None);
        let i = |t, c| Match {
            proto: "icmp".into(),
            ports: None,
            icmp: Some((t, c)),
            cidrs: vec![Block { base: 0, prefix: 0 }],
        };
        assert_eq!(i(-1, -1).meet(&i(8, 0)), Some(i(8, 0)));
        assert_eq!(i(3, -1).meet(&i(8, 0)), None);
        assert_eq!(digest(&[]), digest(&[]));
    }

    #[test]
    fn descriptions_round_trip() {
        let d = description("t-1", "n-2", 0xab);
        let l = json!({"name": LIST_NAME, "description": d});
        assert_eq!(nacl_of(&l).as_deref(), Some("n-2"));
        assert_eq!(tier_of(&l).as_deref(), Some("t-1"));
        assert!(is_enforcement(&l));
    }
}
