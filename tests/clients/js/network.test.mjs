// Issue 10's and issue 11's flows through the AWS SDK for JavaScript v3: a VPC with two subnets,
// an internet gateway, a route table with a default route and an association, security groups
// (one with ingress from the other), a key pair; an instance launched with two interfaces in
// the two subnets, a secondary private address and an Elastic IP on that secondary address; a
// custom network ACL on one subnet; a site-to-site VPN with a static route propagated into the
// route table; tags on all of it. The VPC cannot be deleted first (DependencyViolation, nothing
// changed); then everything is torn down in reverse order with nothing left in the describe
// answers, nor in CloudStack (its own API, signed as CloudStack signs, when
// EC2BRIDGE_CLOUDSTACK_ENDPOINT is given). Run by tests/clients/ec2/test_js_sdk.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";

import {
  AllocateAddressCommand,
  AssociateAddressCommand,
  AssociateRouteTableCommand,
  AttachInternetGatewayCommand,
  AttachVpnGatewayCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateCustomerGatewayCommand,
  CreateInternetGatewayCommand,
  CreateKeyPairCommand,
  CreateNetworkAclCommand,
  CreateNetworkAclEntryCommand,
  CreateRouteCommand,
  CreateRouteTableCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  CreateVpnConnectionCommand,
  CreateVpnConnectionRouteCommand,
  CreateVpnGatewayCommand,
  DeleteCustomerGatewayCommand,
  DeleteInternetGatewayCommand,
  DeleteKeyPairCommand,
  DeleteNetworkAclCommand,
  DeleteRouteTableCommand,
  DeleteSecurityGroupCommand,
  DeleteSubnetCommand,
  DeleteVpcCommand,
  DeleteVpnConnectionCommand,
  DeleteVpnConnectionRouteCommand,
  DeleteVpnGatewayCommand,
  DescribeAddressesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeInternetGatewaysCommand,
  DescribeNetworkAclsCommand,
  DescribeNetworkInterfacesCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeTagsCommand,
  DescribeVpcsCommand,
  DescribeVpnConnectionsCommand,
  DescribeVpnGatewaysCommand,
  DescribeCustomerGatewaysCommand,
  DetachInternetGatewayCommand,
  DetachVpnGatewayCommand,
  DisableVgwRoutePropagationCommand,
  DisassociateAddressCommand,
  DisassociateRouteTableCommand,
  EnableVgwRoutePropagationCommand,
  ReleaseAddressCommand,
  ReplaceNetworkAclAssociationCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceTerminated,
  waitUntilSubnetAvailable,
  waitUntilVpcAvailable,
  waitUntilVpnConnectionAvailable,
  waitUntilVpnConnectionDeleted,
} from "@aws-sdk/client-ec2";

import { ec2Client, target } from "./target.mjs";

const T = target();
const ec2 = ec2Client(T);
const WAIT = { client: ec2, maxWaitTime: 90, minDelay: 1, maxDelay: 2 };
const send = (c) => ec2.send(c);

// CloudStack's own API with the same user's keys (docs/cloudstack-wire.md "Signing": sorted
// names, values encoded as Java's URLEncoder with %20, the whole string lowercased, HMAC-SHA1).
function javaEncode(v) {
  return encodeURIComponent(v).replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}
async function cloudstack(command, params = {}) {
  const all = { ...params, command, response: "json", apiKey: T.accessKeyId };
  const names = Object.keys(all).sort();
  const query = names.map((k) => `${k}=${javaEncode(String(all[k]))}`).join("&");
  const signature = createHmac("sha1", T.secretAccessKey).update(query.toLowerCase()).digest("base64");
  const res = await fetch(`${T.cloudstack}?${query}&signature=${encodeURIComponent(signature)}`);
  assert.equal(res.status, 200, `${command}: HTTP ${res.status}`);
  const body = await res.json();
  return Object.values(body)[0];
}
async function csList(command, key, params = {}) {
  return (await cloudstack(command, { listall: "true", ...params }))[key] || [];
}

const tags = (kind, name) => [{ ResourceType: kind, Tags: [{ Key: "Name", Value: name }, { Key: "flow", Value: "js" }] }];

async function errorOf(promise) {
  try {
    await promise;
  } catch (e) {
    return [e.name, e.message];
  }
  assert.fail("the call succeeded");
}

test("VPC and network flow: two interfaces, EIP on a secondary address, ACL, VPN; teardown", async () => {
  // --- VPC, subnets, internet gateway, route table -------------------------------------------------
  const vpc = (await send(new CreateVpcCommand({ CidrBlock: "10.61.0.0/16", TagSpecifications: tags("vpc", "js-vpc") })))
    .Vpc;
  const vid = vpc.VpcId;
  assert.match(vid, /^vpc-[0-9a-f]{17}$/);
  assert.equal((await waitUntilVpcAvailable(WAIT, { VpcIds: [vid] })).state, "SUCCESS");
  const subnet = async (cidr, name) =>
    (await send(new CreateSubnetCommand({ VpcId: vid, CidrBlock: cidr, TagSpecifications: tags("subnet", name) })))
      .Subnet.SubnetId;
  const sa = await subnet("10.61.1.0/24", "js-a");
  const sb = await subnet("10.61.2.0/24", "js-b");
  assert.equal((await waitUntilSubnetAvailable(WAIT, { SubnetIds: [sa, sb] })).state, "SUCCESS");
  const igw = (await send(new CreateInternetGatewayCommand({ TagSpecifications: tags("internet-gateway", "js-igw") })))
    .InternetGateway.InternetGatewayId;
  await send(new AttachInternetGatewayCommand({ InternetGatewayId: igw, VpcId: vid }));
  const rtb = (await send(new CreateRouteTableCommand({ VpcId: vid, TagSpecifications: tags("route-table", "js-rt") })))
    .RouteTable.RouteTableId;
  await send(new CreateRouteCommand({ RouteTableId: rtb, DestinationCidrBlock: "0.0.0.0/0", GatewayId: igw }));
  const rtAssoc = (await send(new AssociateRouteTableCommand({ RouteTableId: rtb, SubnetId: sa }))).AssociationId;
  const table = (await send(new DescribeRouteTablesCommand({ RouteTableIds: [rtb] }))).RouteTables[0];
  assert.deepEqual(
    table.Routes.map((r) => [r.DestinationCidrBlock, r.GatewayId, r.State]),
    [
      ["10.61.0.0/16", "local", "active"],
      ["0.0.0.0/0", igw, "active"],
    ],
  );
  assert.deepEqual(
    table.Associations.map((a) => a.SubnetId),
    [sa],
  );

  // --- security groups (ingress from another group), key pair ---------------------------------
  const sg = async (name) =>
    (
      await send(
        new CreateSecurityGroupCommand({
          GroupName: name,
          Description: name,
          VpcId: vid,
          TagSpecifications: tags("security-group", name),
        }),
      )
    ).GroupId;
  const web = await sg("js-web");
  const app = await sg("js-app");
  await send(
    new AuthorizeSecurityGroupIngressCommand({
      GroupId: web,
      IpPermissions: [{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "203.0.113.0/24" }] }],
    }),
  );
  await send(
    new AuthorizeSecurityGroupIngressCommand({
      GroupId: app,
      IpPermissions: [{ IpProtocol: "tcp", FromPort: 8080, ToPort: 8080, UserIdGroupPairs: [{ GroupId: web }] }],
    }),
  );
  const appGroup = (await send(new DescribeSecurityGroupsCommand({ GroupIds: [app] }))).SecurityGroups[0];
  assert.deepEqual(
    appGroup.IpPermissions.map((p) => [p.FromPort, p.UserIdGroupPairs.map((g) => g.GroupId)]),
    [[8080, [web]]],
  );
  const key = await send(new CreateKeyPairCommand({ KeyName: "js-flow-key" }));
  assert.match(key.KeyMaterial, /PRIVATE KEY/);

  // --- an instance with two interfaces in two subnets, a secondary address on the second --------
  const image = (await send(new DescribeImagesCommand({ Filters: [{ Name: "name", Values: ["Ubuntu*"] }] }))).Images[0]
    .ImageId;
  const run = await send(
    new RunInstancesCommand({
      ImageId: image,
      InstanceType: "m1.small",
      MinCount: 1,
      MaxCount: 1,
      KeyName: "js-flow-key",
      NetworkInterfaces: [
        { DeviceIndex: 0, SubnetId: sa, Groups: [web], Description: "js front" },
        {
          DeviceIndex: 1,
          SubnetId: sb,
          Groups: [app],
          Description: "js back",
          PrivateIpAddresses: [
            { PrivateIpAddress: "10.61.2.20", Primary: true },
            { PrivateIpAddress: "10.61.2.21", Primary: false },
          ],
        },
      ],
      TagSpecifications: tags("instance", "js-vm"),
    }),
  );
  const iid = run.Instances[0].InstanceId;
  assert.equal(run.Instances[0].SubnetId, sa);
  assert.equal((await waitUntilInstanceRunning(WAIT, { InstanceIds: [iid] })).state, "SUCCESS");
  const inst = (await send(new DescribeInstancesCommand({ InstanceIds: [iid] }))).Reservations[0].Instances[0];
  assert.equal(inst.KeyName, "js-flow-key");
  const nics = [...inst.NetworkInterfaces].sort((a, b) => a.Attachment.DeviceIndex - b.Attachment.DeviceIndex);
  assert.deepEqual(
    nics.map((n) => [n.Attachment.DeviceIndex, n.SubnetId, n.Description, n.Groups.map((g) => g.GroupId)]),
    [
      [0, sa, "js front", [web]],
      [1, sb, "js back", [app]],
    ],
  );
  const eni = nics[1].NetworkInterfaceId;
  const second = (await send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eni] }))).NetworkInterfaces[0];
  assert.equal(second.Status, "in-use");
  assert.deepEqual(
    second.PrivateIpAddresses.map((a) => [a.PrivateIpAddress, a.Primary]),
    [
      ["10.61.2.20", true],
      ["10.61.2.21", false],
    ],
  );

  // --- an Elastic IP on the secondary address -------------------------------------------------
  const eip = await send(new AllocateAddressCommand({ Domain: "vpc" }));
  const assoc = (
    await send(
      new AssociateAddressCommand({
        AllocationId: eip.AllocationId,
        NetworkInterfaceId: eni,
        PrivateIpAddress: "10.61.2.21",
      }),
    )
  ).AssociationId;
  assert.match(assoc, /^eipassoc-/);
  const addr = (await send(new DescribeAddressesCommand({ AllocationIds: [eip.AllocationId] }))).Addresses[0];
  assert.deepEqual(
    [addr.NetworkInterfaceId, addr.PrivateIpAddress, addr.InstanceId, addr.AssociationId],
    [eni, "10.61.2.21", iid, assoc],
  );
  const withEip = (await send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eni] }))).NetworkInterfaces[0];
  const onSecondary = withEip.PrivateIpAddresses.find((a) => a.PrivateIpAddress === "10.61.2.21");
  assert.deepEqual(
    [onSecondary.Association.PublicIp, onSecondary.Association.AllocationId],
    [eip.PublicIp, eip.AllocationId],
  );
  assert.equal(withEip.Association, undefined); // the interface's own (primary) address has none

  // --- a custom network ACL on subnet B -----------------------------------------------------------
  const acl = (await send(new CreateNetworkAclCommand({ VpcId: vid, TagSpecifications: tags("network-acl", "js-acl") })))
    .NetworkAcl.NetworkAclId;
  await send(
    new CreateNetworkAclEntryCommand({
      NetworkAclId: acl,
      RuleNumber: 100,
      Protocol: "6",
      RuleAction: "allow",
      Egress: false,
      CidrBlock: "10.61.1.0/24",
      PortRange: { From: 8080, To: 8080 },
    }),
  );
  await send(
    new CreateNetworkAclEntryCommand({
      NetworkAclId: acl,
      RuleNumber: 100,
      Protocol: "-1",
      RuleAction: "allow",
      Egress: true,
      CidrBlock: "0.0.0.0/0",
    }),
  );
  const current = (
    await send(new DescribeNetworkAclsCommand({ Filters: [{ Name: "association.subnet-id", Values: [sb] }] }))
  ).NetworkAcls[0];
  const defaultAcl = current.NetworkAclId;
  const aclAssoc = current.Associations.find((a) => a.SubnetId === sb).NetworkAclAssociationId;
  const newAclAssoc = (await send(new ReplaceNetworkAclAssociationCommand({ AssociationId: aclAssoc, NetworkAclId: acl })))
    .NewAssociationId;
  const got = (await send(new DescribeNetworkAclsCommand({ NetworkAclIds: [acl] }))).NetworkAcls[0];
  assert.deepEqual(
    got.Associations.map((a) => a.SubnetId),
    [sb],
  );
  assert.deepEqual(
    got.Entries.filter((e) => e.RuleNumber !== 32767)
      .map((e) => [e.RuleNumber, e.Egress, e.Protocol, e.RuleAction])
      .sort(),
    [
      [100, false, "6", "allow"],
      [100, true, "-1", "allow"],
    ],
  );

  // --- a VPN with a static route propagated into the route table ------------------------------------
  const cgw = (
    await send(
      new CreateCustomerGatewayCommand({
        Type: "ipsec.1",
        IpAddress: "198.51.100.61",
        BgpAsn: 65061,
        TagSpecifications: tags("customer-gateway", "js-cgw"),
      }),
    )
  ).CustomerGateway.CustomerGatewayId;
  const vgw = (
    await send(new CreateVpnGatewayCommand({ Type: "ipsec.1", TagSpecifications: tags("vpn-gateway", "js-vgw") }))
  ).VpnGateway.VpnGatewayId;
  await send(new AttachVpnGatewayCommand({ VpnGatewayId: vgw, VpcId: vid }));
  const conn = (
    await send(
      new CreateVpnConnectionCommand({
        Type: "ipsec.1",
        CustomerGatewayId: cgw,
        VpnGatewayId: vgw,
        Options: { StaticRoutesOnly: true },
        TagSpecifications: tags("vpn-connection", "js-vpn"),
      }),
    )
  ).VpnConnection.VpnConnectionId;
  await send(new CreateVpnConnectionRouteCommand({ VpnConnectionId: conn, DestinationCidrBlock: "172.31.61.0/24" }));
  assert.equal((await waitUntilVpnConnectionAvailable(WAIT, { VpnConnectionIds: [conn] })).state, "SUCCESS");
  await send(new EnableVgwRoutePropagationCommand({ GatewayId: vgw, RouteTableId: rtb }));
  const propagated = (await send(new DescribeRouteTablesCommand({ RouteTableIds: [rtb] }))).RouteTables[0];
  assert.deepEqual(propagated.PropagatingVgws, [{ GatewayId: vgw }]);
  const vpnRoute = propagated.Routes.find((r) => r.Origin === "EnableVgwRoutePropagation");
  assert.deepEqual([vpnRoute.DestinationCidrBlock, vpnRoute.GatewayId, vpnRoute.State], ["172.31.61.0/24", vgw, "active"]);

  // --- tags: every resource of the flow by its type --------------------------------------------------
  const tagged = (await send(new DescribeTagsCommand({ Filters: [{ Name: "key", Values: ["flow"] }] }))).Tags.filter(
    (t) => t.Value === "js",
  );
  const kinds = new Set(tagged.map((t) => `${t.ResourceType}:${t.ResourceId}`));
  for (const [kind, id] of [
    ["vpc", vid],
    ["subnet", sa],
    ["subnet", sb],
    ["internet-gateway", igw],
    ["route-table", rtb],
    ["security-group", web],
    ["security-group", app],
    ["instance", iid],
    ["network-acl", acl],
    ["customer-gateway", cgw],
    ["vpn-gateway", vgw],
    ["vpn-connection", conn],
  ]) {
    assert.ok(kinds.has(`${kind}:${id}`), `${kind} ${id} tagged`);
  }

  // --- the wrong order: the VPC first -> DependencyViolation, nothing changed ----------------------
  const snapshot = async () =>
    JSON.stringify([
      (await send(new DescribeSubnetsCommand({ Filters: [{ Name: "vpc-id", Values: [vid] }] }))).Subnets.map(
        (s) => s.SubnetId,
      ).sort(),
      (await send(new DescribeRouteTablesCommand({ RouteTableIds: [rtb] }))).RouteTables[0].Routes,
      (await send(new DescribeNetworkAclsCommand({ NetworkAclIds: [acl] }))).NetworkAcls[0].Associations,
      (await send(new DescribeVpnGatewaysCommand({ VpnGatewayIds: [vgw] }))).VpnGateways[0].VpcAttachments,
      (await send(new DescribeInternetGatewaysCommand({ InternetGatewayIds: [igw] }))).InternetGateways[0].Attachments,
    ]);
  const before = await snapshot();
  const [name] = await errorOf(send(new DeleteVpcCommand({ VpcId: vid })));
  assert.equal(name, "DependencyViolation");
  const [sgName] = await errorOf(send(new DeleteSecurityGroupCommand({ GroupId: web })));
  assert.equal(sgName, "DependencyViolation"); // app's rule and the instance name it
  assert.equal(await snapshot(), before);

  // CloudStack's side before the teardown (when its endpoint is known).
  let csVpc = null;
  let csVm = null;
  if (T.cloudstack) {
    csVpc = (await csList("listVPCs", "vpc")).find((v) => v.cidr === "10.61.0.0/16");
    assert.ok(csVpc, "the CloudStack VPC");
    const vms = (await csList("listVirtualMachines", "virtualmachine")).filter((v) =>
      (v.nic || []).some((n) => n.ipaddress === "10.61.2.20"),
    );
    assert.equal(vms.length, 1);
    csVm = vms[0];
    const back = csVm.nic.find((n) => n.ipaddress === "10.61.2.20");
    assert.deepEqual(
      (back.secondaryip || []).map((s) => s.ipaddress),
      ["10.61.2.21"],
    );
    const nat = (await csList("listPublicIpAddresses", "publicipaddress", { isstaticnat: "true" })).find(
      (i) => i.ipaddress === eip.PublicIp,
    );
    assert.deepEqual([nat.virtualmachineid, nat.vmipaddress], [csVm.id, "10.61.2.21"]);
    assert.equal((await csList("listVpnConnections", "vpnconnection", { vpcid: csVpc.id })).length, 1);
  }

  // --- tear down in reverse order ------------------------------------------------------------------
  await send(new DisableVgwRoutePropagationCommand({ GatewayId: vgw, RouteTableId: rtb }));
  await send(new DeleteVpnConnectionRouteCommand({ VpnConnectionId: conn, DestinationCidrBlock: "172.31.61.0/24" }));
  await send(new DeleteVpnConnectionCommand({ VpnConnectionId: conn }));
  assert.equal((await waitUntilVpnConnectionDeleted(WAIT, { VpnConnectionIds: [conn] })).state, "SUCCESS");
  await send(new DetachVpnGatewayCommand({ VpnGatewayId: vgw, VpcId: vid }));
  await send(new DeleteVpnGatewayCommand({ VpnGatewayId: vgw }));
  await send(new DeleteCustomerGatewayCommand({ CustomerGatewayId: cgw }));
  await send(new ReplaceNetworkAclAssociationCommand({ AssociationId: newAclAssoc, NetworkAclId: defaultAcl }));
  await send(new DeleteNetworkAclCommand({ NetworkAclId: acl }));
  await send(new DisassociateAddressCommand({ AssociationId: assoc }));
  await send(new ReleaseAddressCommand({ AllocationId: eip.AllocationId }));
  await send(new TerminateInstancesCommand({ InstanceIds: [iid] }));
  assert.equal((await waitUntilInstanceTerminated(WAIT, { InstanceIds: [iid] })).state, "SUCCESS");
  // Interfaces made with the instance go with it (DeleteOnTermination true).
  assert.deepEqual(
    (await send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: "vpc-id", Values: [vid] }] })))
      .NetworkInterfaces,
    [],
  );
  await send(new DeleteKeyPairCommand({ KeyName: "js-flow-key" }));
  await send(new DeleteSecurityGroupCommand({ GroupId: app }));
  await send(new DeleteSecurityGroupCommand({ GroupId: web }));
  await send(new DisassociateRouteTableCommand({ AssociationId: rtAssoc }));
  await send(new DeleteRouteTableCommand({ RouteTableId: rtb }));
  await send(new DetachInternetGatewayCommand({ InternetGatewayId: igw, VpcId: vid }));
  await send(new DeleteInternetGatewayCommand({ InternetGatewayId: igw }));
  await send(new DeleteSubnetCommand({ SubnetId: sb }));
  await send(new DeleteSubnetCommand({ SubnetId: sa }));
  await send(new DeleteVpcCommand({ VpcId: vid }));

  // --- nothing left: EC2's describe answers -----------------------------------------------------------
  const live = (rows) => rows.filter((r) => r.State !== "deleted");
  const byVpc = [{ Name: "vpc-id", Values: [vid] }];
  const byFlow = [{ Name: "tag:flow", Values: ["js"] }];
  assert.deepEqual((await send(new DescribeVpcsCommand({ Filters: [{ Name: "cidr", Values: ["10.61.0.0/16"] }] }))).Vpcs, []);
  assert.deepEqual((await send(new DescribeSubnetsCommand({ Filters: byVpc }))).Subnets, []);
  assert.deepEqual((await send(new DescribeInternetGatewaysCommand({ Filters: byFlow }))).InternetGateways, []);
  assert.deepEqual((await send(new DescribeRouteTablesCommand({ Filters: byVpc }))).RouteTables, []);
  assert.deepEqual((await send(new DescribeNetworkAclsCommand({ Filters: byVpc }))).NetworkAcls, []);
  assert.deepEqual((await send(new DescribeSecurityGroupsCommand({ Filters: byVpc }))).SecurityGroups, []);
  assert.deepEqual((await send(new DescribeNetworkInterfacesCommand({ Filters: byVpc }))).NetworkInterfaces, []);
  assert.deepEqual(live((await send(new DescribeVpnConnectionsCommand({ Filters: byFlow }))).VpnConnections), []);
  assert.deepEqual(live((await send(new DescribeVpnGatewaysCommand({ Filters: byFlow }))).VpnGateways), []);
  assert.deepEqual(live((await send(new DescribeCustomerGatewaysCommand({ Filters: byFlow }))).CustomerGateways), []);
  assert.deepEqual(
    (await send(new DescribeAddressesCommand({ Filters: [{ Name: "public-ip", Values: [eip.PublicIp] }] }))).Addresses,
    [],
  );
  const left = (await send(new DescribeInstancesCommand({ InstanceIds: [iid] }))).Reservations.flatMap((r) => r.Instances);
  assert.ok(left.every((i) => i.State.Name === "terminated"));
  // The terminated instance keeps its tags while EC2 lists it (as EC2 does); nothing else does.
  assert.deepEqual(
    (await send(new DescribeTagsCommand({ Filters: [{ Name: "key", Values: ["flow"] }] }))).Tags.filter(
      (t) => t.Value === "js" && t.ResourceId !== iid,
    ),
    [],
  );

  // --- nothing left: CloudStack ------------------------------------------------------------------------
  if (T.cloudstack) {
    assert.deepEqual(
      (await csList("listVPCs", "vpc")).filter((v) => v.id === csVpc.id),
      [],
    );
    assert.deepEqual(
      (await csList("listNetworks", "network")).filter((n) => n.vpcid === csVpc.id),
      [],
    );
    assert.deepEqual(
      (await csList("listVirtualMachines", "virtualmachine")).filter((v) => v.id === csVm.id),
      [],
    );
    assert.deepEqual(
      (await csList("listPublicIpAddresses", "publicipaddress")).filter((i) => i.ipaddress === eip.PublicIp),
      [],
    );
    assert.deepEqual(await csList("listVpnCustomerGateways", "vpncustomergateway", { keyword: conn }), []);
  }
});
