// AWS SDK for JavaScript v3 (@aws-sdk/client-ec2) against an ec2bridge gateway, with node's
// built-in test runner: `node --test tests/clients/js/`.
//
// Where the gateway is: EC2BRIDGE_ENDPOINT, EC2BRIDGE_REGION, EC2BRIDGE_ACCESS_KEY and
// EC2BRIDGE_SECRET_KEY, or EC2BRIDGE_READY_FILE (the JSON `ec2bridge serve --ready-file` writes;
// its first non-admin user is used). tests/clients/ec2/test_js_sdk.py runs this file that way.
//
// JS v3 signs SigV4 with many headers (amz-sdk-*, x-amz-content-sha256, x-amz-user-agent), sends
// spaces as %20, and takes the request id only from the x-amzn-requestid header.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  DescribeAvailabilityZonesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeRegionsCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceTerminated,
} from "@aws-sdk/client-ec2";

import { ec2Client, target } from "./target.mjs";

const T = target();
const client = (secretAccessKey) => ec2Client(T, secretAccessKey);
const ec2 = client();
const WAIT = { client: ec2, maxWaitTime: 90, minDelay: 1, maxDelay: 2 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function rejects(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail("the call succeeded; an error was expected");
}

test("DescribeAvailabilityZones: zones of the gateway's region, request id from the header", async () => {
  const r = await ec2.send(new DescribeAvailabilityZonesCommand({}));
  assert.ok(r.AvailabilityZones.length > 0);
  for (const z of r.AvailabilityZones) {
    assert.equal(z.RegionName, T.region);
    assert.equal(z.State, "available");
    assert.ok(z.ZoneId, "2016-11-15 answers carry zoneId");
  }
  assert.match(r.$metadata.requestId, UUID);
  assert.equal(r.$metadata.httpStatusCode, 200);
});

test("DescribeRegions: the endpoint is the host:port this client used", async () => {
  const r = await ec2.send(new DescribeRegionsCommand({}));
  const mine = r.Regions.find((x) => x.RegionName === T.region);
  assert.ok(mine, JSON.stringify(r.Regions));
  assert.equal(mine.Endpoint, new URL(T.endpoint).host);
});

test("DescribeImages with filters; %20 and reserved characters in values", async () => {
  const r = await ec2.send(new DescribeImagesCommand({ Filters: [{ Name: "name", Values: ["Ubuntu*"] }] }));
  assert.ok(r.Images.length > 0);
  assert.ok(r.Images.every((i) => i.ImageId.startsWith("ami-") && i.Name.startsWith("Ubuntu")));
  const none = await ec2.send(
    new DescribeImagesCommand({ Filters: [{ Name: "name", Values: ["no such a b*c~d/e+f=g&hü"] }] }),
  );
  assert.deepEqual(none.Images, []);
});

test("RunInstances, waitUntilInstanceRunning, DescribeInstances with a filter, TerminateInstances", async () => {
  const images = await ec2.send(new DescribeImagesCommand({ Filters: [{ Name: "name", Values: ["Ubuntu*"] }] }));
  const imageId = images.Images[0].ImageId;
  const run = await ec2.send(
    new RunInstancesCommand({
      ImageId: imageId,
      MinCount: 1,
      MaxCount: 1,
      InstanceType: "t2.micro",
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "js v3 test" }] }],
    }),
  );
  const inst = run.Instances[0];
  const id = inst.InstanceId;
  assert.match(id, /^i-[0-9a-f]{17}$/);
  assert.equal(inst.State.Name, "pending");
  assert.equal(inst.ImageId, imageId);
  assert.ok(inst.LaunchTime instanceof Date && !Number.isNaN(inst.LaunchTime.getTime()));
  try {
    const w = await waitUntilInstanceRunning(WAIT, { InstanceIds: [id] });
    assert.equal(w.state, "SUCCESS");

    const byFilter = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: "instance-state-name", Values: ["running"] },
          { Name: "tag:Name", Values: ["js v3 test"] },
        ],
      }),
    );
    const ids = byFilter.Reservations.flatMap((r) => r.Instances.map((i) => i.InstanceId));
    assert.ok(ids.includes(id), JSON.stringify(ids));
    const one = byFilter.Reservations.flatMap((r) => r.Instances).find((i) => i.InstanceId === id);
    assert.equal(one.State.Code, 16);
    assert.deepEqual(one.Tags, [{ Key: "Name", Value: "js v3 test" }]);
    const stopped = await ec2.send(
      new DescribeInstancesCommand({
        InstanceIds: [id],
        Filters: [{ Name: "instance-state-name", Values: ["stopped"] }],
      }),
    );
    assert.deepEqual(stopped.Reservations, []);
  } finally {
    const t = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    assert.equal(t.TerminatingInstances[0].InstanceId, id);
    assert.ok(["shutting-down", "terminated"].includes(t.TerminatingInstances[0].CurrentState.Name));
  }
  const w = await waitUntilInstanceTerminated(WAIT, { InstanceIds: [id] });
  assert.equal(w.state, "SUCCESS");
});

test("errors: EC2 code and message from the body, request id from x-amzn-requestid", async () => {
  const e = await rejects(ec2.send(new DescribeInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] })));
  assert.equal(e.name, "InvalidInstanceID.NotFound");
  assert.equal(e.Code ?? e.name, "InvalidInstanceID.NotFound");
  assert.match(e.message, /i-0123456789abcdef0/);
  assert.equal(e.$metadata.httpStatusCode, 400);
  assert.match(e.$metadata.requestId, UUID);
  assert.equal(e.$fault, "client");

  const bad = await rejects(client("not-the-secret").send(new DescribeRegionsCommand({})));
  assert.equal(bad.name, "SignatureDoesNotMatch");
  assert.equal(bad.$metadata.httpStatusCode, 403);
  assert.match(bad.$metadata.requestId, UUID);
});
