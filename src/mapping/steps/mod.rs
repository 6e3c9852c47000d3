//! Named Rust steps, for what the table cannot say. An action names its step (`step = "..."`,
//! with `args`), or transforms of the item list (`after_list`, `before_render`). Steps are found
//! through these registries by name; adding one is adding a row, never a `match` on actions.

mod account;
pub(crate) mod account_tags;
pub(crate) mod addresses;
pub(crate) mod attrs;
pub(crate) mod common;
pub(crate) mod empty_snapshots;
pub(crate) mod eni;
pub(crate) mod images;
pub(crate) mod instance_attrs;
pub(crate) mod instances;
pub(crate) mod keypairs;
pub(crate) mod launch_nics;
pub(crate) mod nat;
pub(crate) mod network_acls;
mod security_groups;
pub(crate) mod sg_enforce;
pub(crate) mod tags;
pub(crate) mod volumes;
pub(crate) mod vpc;
pub(crate) mod vpc_objects;
pub(crate) mod vpc_sg;
pub(crate) mod vpn;

use serde_json::Value;

use super::backend::BoxFuture;
use super::exec::{Ctx, Prepared};
use crate::base::Ec2Error;

/// Produces the action's result document (rendered by the action's `returns`).
pub type RunFn = for<'a> fn(&'a Ctx<'a>, &'a Prepared) -> BoxFuture<'a, Result<Value, Ec2Error>>;
/// Rewrites the list of items (after the list call, or after paging before rendering).
pub type TransformFn = for<'a> fn(&'a Ctx<'a>, &'a Prepared, Vec<Value>) -> BoxFuture<'a, Result<Vec<Value>, Ec2Error>>;
/// Load-time check of a step's `args`.
pub type ArgCheck = fn(&Value) -> Result<(), String>;

/// A plain `async fn(&Ctx, &Prepared) -> Result<Value, Ec2Error>` as a registry entry: the one
/// place a step's future is boxed.
macro_rules! step {
    ($f:path) => {{
        fn boxed<'a>(ctx: &'a Ctx<'a>, prep: &'a Prepared) -> BoxFuture<'a, Result<Value, Ec2Error>> {
            Box::pin($f(ctx, prep))
        }
        boxed as RunFn
    }};
}

/// A plain `async fn(&Ctx, &Prepared, Vec<Value>) -> Result<Vec<Value>, Ec2Error>` as a registry
/// entry.
macro_rules! transform {
    ($f:path) => {{
        fn boxed<'a>(
            ctx: &'a Ctx<'a>,
            prep: &'a Prepared,
            items: Vec<Value>,
        ) -> BoxFuture<'a, Result<Vec<Value>, Ec2Error>> {
            Box::pin($f(ctx, prep, items))
        }
        boxed as TransformFn
    }};
}

const STEPS: &[(&str, RunFn, ArgCheck, &str)] = &[
    (
        "run_instances",
        step!(instances::run_instances),
        instances::check_run_args,
        "deploy MinCount..MaxCount VMs concurrently, roll back below MinCount, tags, ClientToken, public addresses in subnets",
    ),
    (
        "instance_state_change",
        step!(instances::state_change),
        instances::check_state_change_args,
        "start/stop/reboot/destroy each instance; answers previous and current state at once; launch-time addresses released",
    ),
    ("account_attributes", step!(account::attributes), no_args, "DescribeAccountAttributes from zones and the account"),
    (
        "create_image",
        step!(images::create_image),
        no_args,
        "template from the instance's ROOT volume; a running VM is stopped and started again",
    ),
    (
        "register_image",
        step!(images::register_image),
        images::check_register_args,
        "registerTemplate from ImageLocation; format, hypervisor, OS type and zone from defaults",
    ),
    (
        "describe_image_attribute",
        step!(images::describe_attribute),
        no_args,
        "one image attribute (description, launchPermission, ...)",
    ),
    (
        "modify_image_attribute",
        step!(images::modify_attribute),
        no_args,
        "description / launch permissions, undone on a half-way failure",
    ),
    (
        "allocate_address",
        step!(addresses::allocate),
        no_args,
        "associateIpAddress in the default zone, or (Domain=vpc) in the default / newest VPC with an internet gateway",
    ),
    (
        "associate_address",
        step!(addresses::associate),
        no_args,
        "enableStaticNat (VPC: tier, guest address, internet gateway), moving what is in the way (AllowReassociation)",
    ),
    (
        "tags_by_kind",
        step!(tags::by_kind),
        tags::check_args,
        "create/deleteTags, one call per resource type, undone on failure",
    ),
    (
        "instance_attribute",
        step!(instance_attrs::instance_attribute),
        instance_attrs::check_args,
        "Describe/ModifyInstanceAttribute (args.op)",
    ),
    (
        "create_volume",
        step!(volumes::create_volume),
        no_args,
        "createVolume (custom disk offering or snapshot), ClientToken, tags with undo",
    ),
    (
        "create_snapshot",
        step!(volumes::create_snapshot),
        no_args,
        "listVolumes; Ready: createSnapshot, tags with undo; never attached: an empty snapshot in the store",
    ),
    (
        "create_security_group",
        step!(security_groups::create),
        no_args,
        "createSecurityGroup; reserved/duplicate names; TagSpecification (undone on failure)",
    ),
    ("delete_security_group", step!(security_groups::delete), no_args, "deleteSecurityGroup by GroupId or GroupName"),
    (
        "authorize_security_group",
        step!(security_groups::authorize),
        security_groups::check_rule_args,
        "one authorize call per permission; duplicates refused; a failure revokes the earlier ones; no egress outside a VPC",
    ),
    (
        "revoke_security_group",
        step!(security_groups::revoke),
        security_groups::check_rule_args,
        "match permissions against the group's rules, revoke them by rule id; absent rules succeed outside a VPC",
    ),
    (
        "import_key_pair",
        step!(keypairs::import),
        no_args,
        "registerSSHKeyPair from base64 OpenSSH material; format check",
    ),
    (
        "create_internet_gateway",
        step!(vpc_objects::create_internet_gateway),
        no_args,
        "a store-held internet gateway, tags",
    ),
    (
        "describe_internet_gateways",
        step!(vpc_objects::describe_internet_gateways),
        no_args,
        "the caller's gateways (store)",
    ),
    (
        "delete_internet_gateway",
        step!(vpc_objects::delete_internet_gateway),
        no_args,
        "attached -> DependencyViolation",
    ),
    (
        "attach_internet_gateway",
        step!(vpc_objects::attach_internet_gateway),
        no_args,
        "one gateway per VPC, one VPC per gateway (store claim); the VPC must exist (listVPCs)",
    ),
    (
        "detach_internet_gateway",
        step!(vpc_objects::detach_internet_gateway),
        no_args,
        "not attached there -> Gateway.NotAttached; mapped public addresses -> DependencyViolation",
    ),
    (
        "create_dhcp_options",
        step!(vpc_objects::create_dhcp_options),
        no_args,
        "a store-held DHCP options set, checked keys/values",
    ),
    (
        "describe_dhcp_options",
        step!(vpc_objects::describe_dhcp_options),
        no_args,
        "the caller's DHCP options sets (store)",
    ),
    ("delete_dhcp_options", step!(vpc_objects::delete_dhcp_options), no_args, "in use by a VPC -> DependencyViolation"),
    (
        "associate_dhcp_options",
        step!(vpc_objects::associate_dhcp_options),
        no_args,
        "the VPC's set (or default), in the store",
    ),
    ("create_route_table", step!(vpc_objects::create_route_table), no_args, "a table with the local route (VPC CIDR)"),
    (
        "describe_route_tables",
        step!(vpc_objects::describe_route_tables),
        no_args,
        "listVPCs: main tables made where missing, tables of deleted VPCs dropped; blackhole routes",
    ),
    (
        "delete_route_table",
        step!(vpc_objects::delete_route_table),
        no_args,
        "associated or main -> DependencyViolation",
    ),
    ("change_route", step!(vpc_objects::change_route), check_route_args, "Create/Replace/DeleteRoute (args.op)"),
    (
        "associate_route_table",
        step!(vpc_objects::associate_route_table),
        no_args,
        "one table per subnet (store claim); subnet and table in one VPC",
    ),
    ("disassociate_route_table", step!(vpc_objects::disassociate_route_table), no_args, "not the main association"),
    (
        "replace_route_table_association",
        step!(vpc_objects::replace_route_table_association),
        no_args,
        "move a subnet's (or the main) association to another table of the VPC",
    ),
    (
        "create_vpc",
        step!(vpc::create_vpc),
        no_args,
        "createVPC in the VPC zone (waited for), tags, main route table; undone on failure",
    ),
    (
        "delete_vpc",
        step!(vpc::delete_vpc),
        no_args,
        "tiers, an attached gateway, other route tables or Elastic IPs -> DependencyViolation; deleteVPC",
    ),
    (
        "describe_vpc_attribute",
        step!(vpc::describe_vpc_attribute),
        no_args,
        "enableDnsSupport / enableDnsHostnames (store)",
    ),
    ("modify_vpc_attribute", step!(vpc::modify_vpc_attribute), no_args, "one DNS attribute, recorded in the store"),
    (
        "create_default_vpc",
        step!(vpc::create_default_vpc),
        no_args,
        "172.31.0.0/16 VPC tagged as the default, a default subnet, an attached gateway and a default route",
    ),
    (
        "create_subnet",
        step!(vpc::create_subnet),
        no_args,
        "createNetwork in the VPC (tier offering, the VPC's default network ACL); range/overlap checked first; tags",
    ),
    (
        "delete_subnet",
        step!(vpc::delete_subnet),
        no_args,
        "instances in the tier -> DependencyViolation; deleteNetwork",
    ),
    ("modify_subnet_attribute", step!(vpc::modify_subnet_attribute), no_args, "MapPublicIpOnLaunch (store)"),
    (
        "create_network_interface",
        step!(eni::create_network_interface),
        no_args,
        "a detached interface in the store; addresses checked, picked and claimed; groups of the VPC",
    ),
    (
        "describe_network_interfaces",
        step!(eni::describe_network_interfaces),
        no_args,
        "store interfaces and instance NICs on VPC tiers; interfaces of terminated instances reconciled",
    ),
    (
        "delete_network_interface",
        step!(eni::delete_network_interface),
        no_args,
        "attached -> InvalidNetworkInterface.InUse; the record and its address claims go",
    ),
    (
        "attach_network_interface",
        step!(eni::attach_network_interface),
        no_args,
        "addNicToVirtualMachine with the interface's tier and address, addIpToNic per secondary; undone on failure",
    ),
    (
        "detach_network_interface",
        step!(eni::detach_network_interface),
        no_args,
        "removeNicFromVirtualMachine; the primary interface -> OperationNotPermitted",
    ),
    (
        "describe_network_acls",
        step!(network_acls::describe),
        no_args,
        "the ACL lists of the caller's VPCs (each VPC's default made where missing): entries, associations, tags",
    ),
    (
        "create_network_acl",
        step!(network_acls::create),
        no_args,
        "createNetworkACLList in the VPC with an egress deny-all item; tags in the store",
    ),
    (
        "delete_network_acl",
        step!(network_acls::delete),
        no_args,
        "the default -> InvalidParameterValue, on a tier -> DependencyViolation; deleteNetworkACLList",
    ),
    (
        "create_network_acl_entry",
        step!(network_acls::create_entry),
        no_args,
        "createNetworkACL at number 2N (ingress) / 2N+1 (egress); taken -> NetworkAclEntryAlreadyExists",
    ),
    (
        "replace_network_acl_entry",
        step!(network_acls::replace_entry),
        no_args,
        "updateNetworkACLItem with every field; absent -> InvalidNetworkAclEntry.NotFound",
    ),
    (
        "delete_network_acl_entry",
        step!(network_acls::delete_entry),
        no_args,
        "deleteNetworkACL of the entry's item; absent -> InvalidNetworkAclEntry.NotFound",
    ),
    (
        "replace_network_acl_association",
        step!(network_acls::replace_association),
        no_args,
        "replaceNetworkACLList of the association's tier; the new association id",
    ),
    (
        "modify_network_interface_attribute",
        step!(eni::modify_network_interface_attribute),
        no_args,
        "one attribute in the store (description, sourceDestCheck, groups, DeleteOnTermination)",
    ),
    (
        "describe_network_interface_attribute",
        step!(eni::describe_network_interface_attribute),
        no_args,
        "one attribute of the interface's view",
    ),
    (
        "reset_network_interface_attribute",
        step!(eni::reset_network_interface_attribute),
        no_args,
        "sourceDestCheck back to true",
    ),
    (
        "assign_private_ip_addresses",
        step!(eni::assign_private_ip_addresses),
        no_args,
        "claim secondary addresses, addIpToNic when attached; undone on failure",
    ),
    (
        "create_nat_gateway",
        step!(nat::create_nat_gateway),
        no_args,
        "a store record holding its Elastic IP (CloudStack tag + store claim) and a private address of the subnet; no internet gateway -> failed",
    ),
    (
        "describe_nat_gateways",
        step!(nat::describe_nat_gateways),
        no_args,
        "the store's NAT gateways (deleted ones for an hour)",
    ),
    (
        "delete_nat_gateway",
        step!(nat::delete_nat_gateway),
        no_args,
        "deleteTags on the Elastic IP, claims released, the record kept as deleted for an hour",
    ),
    (
        "unassign_private_ip_addresses",
        step!(eni::unassign_private_ip_addresses),
        no_args,
        "removeIpFromNic when attached; claims released",
    ),
    (
        "create_customer_gateway",
        step!(vpn::create_customer_gateway),
        no_args,
        "a store-held customer gateway (address, ASN); the same Type, address and ASN answer the existing one",
    ),
    (
        "delete_customer_gateway",
        step!(vpn::delete_customer_gateway),
        no_args,
        "used by a VPN connection -> IncorrectState; kept as deleted for an hour",
    ),
    (
        "create_vpn_gateway",
        step!(vpn::create_vpn_gateway),
        no_args,
        "a store-held, detached VPN gateway; AmazonSideAsn, AvailabilityZone checked and recorded",
    ),
    (
        "delete_vpn_gateway",
        step!(vpn::delete_vpn_gateway),
        no_args,
        "attached -> IncorrectState; kept as deleted for an hour",
    ),
    (
        "attach_vpn_gateway",
        step!(vpn::attach_vpn_gateway),
        no_args,
        "createVpnGateway in the VPC (or adopt the VPC's), one per VPC (store claim), undone on failure",
    ),
    (
        "detach_vpn_gateway",
        step!(vpn::detach_vpn_gateway),
        no_args,
        "deleteVpnGateway (when the gateway made it); VPN connections on it -> IncorrectState",
    ),
    (
        "create_vpn_connection",
        step!(vpn::create_vpn_connection),
        no_args,
        "static routes only; tunnel options -> IKE/ESP policies (refused where CloudStack cannot); configuration document",
    ),
    (
        "delete_vpn_connection",
        step!(vpn::delete_vpn_connection),
        no_args,
        "deleteVpnConnection + deleteVpnCustomerGateway; kept as deleted for an hour",
    ),
    (
        "change_vpn_route",
        step!(vpn::change_vpn_route),
        check_route_args_vpn,
        "Create/DeleteVpnConnectionRoute (args.op): the CloudStack customer gateway's cidrlist, made/removed with the first/last route",
    ),
    (
        "modify_vpn_connection",
        step!(vpn::modify_vpn_connection),
        no_args,
        "another customer gateway (updateVpnCustomerGateway's address) and/or VPN gateway (createVpnConnection there, the old one deleted); transit gateways refused",
    ),
    (
        "modify_vpn_connection_options",
        step!(vpn::modify_vpn_connection_options),
        no_args,
        "Local/RemoteIpv4NetworkCidr: only 0.0.0.0/0 (the selectors are the VPC CIDR and the static routes); IPv6 refused",
    ),
    (
        "modify_vpn_tunnel_options",
        step!(vpn::modify_vpn_tunnel_options),
        no_args,
        "the tunnel's options (unnamed ones kept) -> updateVpnCustomerGateway (restarts the connection)",
    ),
    (
        "describe_vpn_objects",
        step!(vpn::describe_vpn_objects),
        vpn::check_describe_args,
        "customer gateways, VPN gateways or connections (args.kind) from the store; connection states from listVpnConnections",
    ),
    (
        "vgw_route_propagation",
        step!(vpn::vgw_route_propagation),
        vpn::check_propagation_args,
        "Enable/DisableVgwRoutePropagation (args.op) on a store route table",
    ),
];

fn check_route_args_vpn(v: &Value) -> Result<(), String> {
    check_keys(v, &["op"], &["op"])?;
    match v["op"].as_str() {
        Some("create" | "delete") => Ok(()),
        _ => Err("op must be create or delete".into()),
    }
}

fn check_route_args(v: &Value) -> Result<(), String> {
    check_keys(v, &["op"], &["op"])?;
    match v["op"].as_str() {
        Some("create" | "replace" | "delete") => Ok(()),
        _ => Err("op must be create, replace or delete".into()),
    }
}

/// After-list steps that keep the listed items one for one and in order (they annotate each item
/// from it alone or from lists of other things), so they may run on one page of the list when
/// paging is pushed down to CloudStack (`exec::pushed_window`). A step not named here needs the
/// whole list.
const PER_ITEM: &[&str] =
    &["reservation_ids", "instance_vpc", "instance_block_devices", "instance_platform", "volume_states"];

/// Whether after-list step `name` keeps a page of the list as it is, for this request.
/// `instance_tombstones` does while the caller has no tombstones (else it appends terminated
/// instances CloudStack no longer lists, after the whole list).
pub async fn keeps_window(name: &str, ctx: &Ctx<'_>) -> Result<bool, Ec2Error> {
    if PER_ITEM.contains(&name) {
        return Ok(true);
    }
    if name == "instance_tombstones" {
        return instances::no_tombstones(ctx).await;
    }
    Ok(false)
}

/// The fields of the listed items each transform reads (fields it adds itself included), for
/// decoding items with only the fields an action reads (`project::item_fields`): `nic` is the
/// field whole, `nic.networkid` that field of the objects in it. A transform not named here
/// reads whole items. Keep in step with the code: tests/golden.rs compares every recorded
/// answer over items read whole and read this way.
const READS: &[(&str, &[&str])] = &[
    ("instance_tombstones", &["id", "state"]),
    ("reservation_ids", &["group", "id"]),
    (
        "instance_vpc",
        &[
            "account",
            "id",
            "nic.deviceid",
            "nic.id",
            "nic.ipaddress",
            "nic.isdefault",
            "nic.macaddress",
            "nic.networkid",
            "nic.secondaryip",
            "nic.type",
            "publicip",
            "zonename",
        ],
    ),
    ("instance_block_devices", &["id", "state"]),
    ("instance_platform", &["osdisplayname", "ostypeid"]),
    ("group_reservations", &["_launchindex", "_reservationid", "account", "id"]),
];

/// What transform `name` reads of each listed item; None: whole items.
pub fn transform_reads(name: &str) -> Option<&'static [&'static str]> {
    READS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

const TRANSFORMS: &[(&str, TransformFn, &str)] = &[
    (
        "instance_tombstones",
        transform!(instances::tombstones),
        "show terminating/terminated instances CloudStack hides",
    ),
    (
        "instance_block_devices",
        transform!(instances::block_devices),
        "DescribeInstances: blockDeviceMapping from one listVolumes (root + attached data volumes)",
    ),
    (
        "instance_platform",
        transform!(instances::platform),
        "DescribeInstances: _ostypename from listOsTypes (cached), for platform windows",
    ),
    ("reservation_ids", transform!(instances::reservation_ids), "annotate _reservationid (deploy batch, else per VM)"),
    (
        "group_reservations",
        transform!(instances::group_reservations),
        "instances -> reservations (reservationSet items)",
    ),
    ("image_owners", transform!(images::owners), "apply Owner.N / ExecutableBy.N to the listed templates"),
    (
        "address_annotations",
        transform!(addresses::annotations),
        "DescribeAddresses: association ids, domain, network interfaces, PublicIp.N; launch-time addresses left out",
    ),
    (
        "running_unless_all",
        transform!(instance_attrs::running_unless_all),
        "DescribeInstanceStatus: running only unless IncludeAllInstances",
    ),
    (
        "instance_type_names",
        transform!(instance_attrs::instance_type_names),
        "DescribeInstanceTypes: InstanceType.N, checked",
    ),
    ("tag_descriptions", transform!(tags::descriptions), "DescribeTags: EC2 resource ids and types of CloudStack tags"),
    (
        "volume_states",
        transform!(volumes::volume_states),
        "volume _status and _attachments (EBS status, attachment status)",
    ),
    (
        "empty_snapshots",
        transform!(empty_snapshots::describe),
        "add the caller's snapshots of never-attached volumes (store) to CloudStack's",
    ),
    (
        "account_tags",
        transform!(account_tags::merge),
        "merge the tags the gateway keeps for the caller (other accounts' images, store-held snapshots)",
    ),
    ("snapshot_owners", transform!(volumes::snapshot_owners), "apply DescribeSnapshots Owner.N"),
    (
        "snapshot_sizes",
        transform!(volumes::snapshot_sizes),
        "_volumesize for snapshots without virtualsize (one listVolumes)",
    ),
    (
        "security_group_permissions",
        transform!(security_groups::permissions),
        "CloudStack rules -> EC2 permissions (_ingress, _egress)",
    ),
    (
        "security_group_selection",
        transform!(security_groups::select),
        "GroupId.N / GroupName.N: keep those groups (either); unknown -> InvalidGroup.NotFound",
    ),
    (
        "key_pair_names",
        transform!(keypairs::names),
        "KeyName.N: keep those key pairs; unknown -> InvalidKeyPair.NotFound",
    ),
    (
        "instance_vpc",
        transform!(vpc::instance_annotations),
        "DescribeInstances: vpcId, subnetId, network interfaces of instances on VPC tiers, their public addresses",
    ),
    (
        "vpc_security_groups",
        transform!(vpc_sg::describe),
        "DescribeSecurityGroups: the VPC groups the gateway keeps (each VPC's default made where missing)",
    ),
    ("vpc_annotations", transform!(vpc::vpc_annotations), "DescribeVpcs: default flag, DHCP options set, visible tags"),
    (
        "subnet_annotations",
        transform!(vpc::subnet_annotations),
        "DescribeSubnets: VPC tiers only; free addresses, default-for-az, map-public-ip, visible tags",
    ),
];

pub fn describe() -> Vec<(&'static str, &'static str)> {
    STEPS.iter().map(|(n, _, _, d)| (*n, *d)).chain(TRANSFORMS.iter().map(|(n, _, d)| (*n, *d))).collect()
}

fn no_args(v: &Value) -> Result<(), String> {
    if v.is_null() { Ok(()) } else { Err("this step takes no args".into()) }
}

pub fn check_step(name: &str, args: &Value) -> Result<(), String> {
    match STEPS.iter().find(|(n, _, _, _)| *n == name) {
        Some((_, _, check, _)) => check(args).map_err(|m| format!("step {name}: {m}")),
        None => {
            let known: Vec<&str> = STEPS.iter().map(|(n, _, _, _)| *n).collect();
            Err(format!("unknown step '{name}' (known: {})", known.join(", ")))
        }
    }
}

pub fn is_transform(name: &str) -> bool {
    TRANSFORMS.iter().any(|(n, _, _)| *n == name)
}

pub fn transform_names() -> Vec<&'static str> {
    TRANSFORMS.iter().map(|(n, _, _)| *n).collect()
}

pub async fn run(name: &str, ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    match STEPS.iter().find(|(n, _, _, _)| *n == name) {
        Some((_, f, _, _)) => f(ctx, prep).await,
        None => Err(Ec2Error::internal()),
    }
}

pub async fn transform(name: &str, ctx: &Ctx<'_>, prep: &Prepared, items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    match TRANSFORMS.iter().find(|(n, _, _)| *n == name) {
        Some((_, f, _)) => f(ctx, prep, items).await,
        None => Err(Ec2Error::internal()),
    }
}

/// `args.key` as a list of strings (a string counts as a one-element list).
pub(crate) fn arg_strs(args: &Value, key: &str) -> Vec<String> {
    match args.get(key) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn check_keys(args: &Value, allowed: &[&str], required: &[&str]) -> Result<(), String> {
    let Some(o) = args.as_object() else { return Err("args must be a table".into()) };
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!("unknown args key '{k}' (expected one of: {})", allowed.join(", ")));
        }
    }
    for r in required {
        if !o.contains_key(*r) {
            return Err(format!("args needs '{r}'"));
        }
    }
    Ok(())
}
