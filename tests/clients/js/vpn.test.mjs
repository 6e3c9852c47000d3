// Site-to-site VPN through the AWS SDK for JavaScript v3 (docs/vpn.md): a VPC with a VPN gateway,
// a customer gateway, a VPN connection with a static route propagated into the main route table,
// the SDK's VPN waiters, then everything torn down. Run by tests/clients/ec2/test_js_sdk.py with
// the rest of this directory (`node --test tests/clients/js/`).
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  AttachVpnGatewayCommand,
  CreateCustomerGatewayCommand,
  CreateVpcCommand,
  CreateVpnConnectionCommand,
  CreateVpnConnectionRouteCommand,
  CreateVpnGatewayCommand,
  DeleteCustomerGatewayCommand,
  DeleteVpcCommand,
  DeleteVpnConnectionCommand,
  DeleteVpnGatewayCommand,
  DescribeRouteTablesCommand,
  DescribeVpnConnectionsCommand,
  DetachVpnGatewayCommand,
  EnableVgwRoutePropagationCommand,
  waitUntilVpnConnectionAvailable,
  waitUntilVpnConnectionDeleted,
} from "@aws-sdk/client-ec2";

import { ec2Client, target } from "./target.mjs";

const T = target();
const ec2 = ec2Client(T);
const WAIT = { client: ec2, maxWaitTime: 60, minDelay: 1, maxDelay: 2 };

test("VPN: customer gateway, VPN gateway, connection, propagated static route, waiters, teardown", async () => {
  const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: "10.42.0.0/16" }))).Vpc.VpcId;
  const cgw = (
    await ec2.send(new CreateCustomerGatewayCommand({ Type: "ipsec.1", IpAddress: "198.51.100.42", BgpAsn: 65042 }))
  ).CustomerGateway.CustomerGatewayId;
  assert.match(cgw, /^cgw-[0-9a-f]{17}$/);
  const vgw = (await ec2.send(new CreateVpnGatewayCommand({ Type: "ipsec.1" }))).VpnGateway.VpnGatewayId;
  const att = await ec2.send(new AttachVpnGatewayCommand({ VpnGatewayId: vgw, VpcId: vpc }));
  assert.deepEqual(att.VpcAttachment, { VpcId: vpc, State: "attached" });
  const conn = (
    await ec2.send(
      new CreateVpnConnectionCommand({
        Type: "ipsec.1",
        CustomerGatewayId: cgw,
        VpnGatewayId: vgw,
        Options: {
          StaticRoutesOnly: true,
          TunnelOptions: [{ PreSharedKey: "js_key_4242", Phase1DHGroupNumbers: [{ Value: 14 }] }],
        },
      }),
    )
  ).VpnConnection;
  const vid = conn.VpnConnectionId;
  assert.match(conn.CustomerGatewayConfiguration, /<pre_shared_key>js_key_4242<\/pre_shared_key>/);
  assert.match(conn.CustomerGatewayConfiguration, /<perfect_forward_secrecy>group14<\/perfect_forward_secrecy>/);
  await ec2.send(new CreateVpnConnectionRouteCommand({ VpnConnectionId: vid, DestinationCidrBlock: "172.31.42.0/24" }));
  assert.equal((await waitUntilVpnConnectionAvailable(WAIT, { VpnConnectionIds: [vid] })).state, "SUCCESS");
  const got = (await ec2.send(new DescribeVpnConnectionsCommand({ VpnConnectionIds: [vid] }))).VpnConnections[0];
  assert.deepEqual(
    got.Routes.map((r) => [r.DestinationCidrBlock, r.Source, r.State]),
    [["172.31.42.0/24", "Static", "available"]],
  );
  assert.equal(got.VgwTelemetry[0].Status, "UP");
  const main = (
    await ec2.send(
      new DescribeRouteTablesCommand({
        Filters: [
          { Name: "vpc-id", Values: [vpc] },
          { Name: "association.main", Values: ["true"] },
        ],
      }),
    )
  ).RouteTables[0];
  await ec2.send(new EnableVgwRoutePropagationCommand({ GatewayId: vgw, RouteTableId: main.RouteTableId }));
  const table = (await ec2.send(new DescribeRouteTablesCommand({ RouteTableIds: [main.RouteTableId] }))).RouteTables[0];
  assert.deepEqual(table.PropagatingVgws, [{ GatewayId: vgw }]);
  const propagated = table.Routes.find((r) => r.Origin === "EnableVgwRoutePropagation");
  assert.deepEqual(
    [propagated.DestinationCidrBlock, propagated.GatewayId, propagated.State],
    ["172.31.42.0/24", vgw, "active"],
  );
  // A second VPN gateway on the VPC is EC2's InvalidVpcState.
  const other = (await ec2.send(new CreateVpnGatewayCommand({ Type: "ipsec.1" }))).VpnGateway.VpnGatewayId;
  const e = await ec2.send(new AttachVpnGatewayCommand({ VpnGatewayId: other, VpcId: vpc })).then(
    () => assert.fail("attached a second VPN gateway"),
    (err) => err,
  );
  assert.equal(e.name, "InvalidVpcState");
  await ec2.send(new DeleteVpnGatewayCommand({ VpnGatewayId: other }));

  await ec2.send(new DeleteVpnConnectionCommand({ VpnConnectionId: vid }));
  assert.equal((await waitUntilVpnConnectionDeleted(WAIT, { VpnConnectionIds: [vid] })).state, "SUCCESS");
  await ec2.send(new DetachVpnGatewayCommand({ VpnGatewayId: vgw, VpcId: vpc }));
  await ec2.send(new DeleteVpnGatewayCommand({ VpnGatewayId: vgw }));
  await ec2.send(new DeleteCustomerGatewayCommand({ CustomerGatewayId: cgw }));
  await ec2.send(new DeleteVpcCommand({ VpcId: vpc }));
});
