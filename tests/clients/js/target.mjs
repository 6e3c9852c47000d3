// Where the gateway under test is, for the *.test.mjs files: EC2BRIDGE_ENDPOINT,
// EC2BRIDGE_REGION, EC2BRIDGE_ACCESS_KEY, EC2BRIDGE_SECRET_KEY (and EC2BRIDGE_CLOUDSTACK_ENDPOINT),
// or EC2BRIDGE_READY_FILE (the JSON `ec2bridge serve --ready-file` writes; its first non-admin
// user is used). tests/clients/ec2/test_js_sdk.py sets the latter.
import { readFileSync } from "node:fs";

import { EC2Client } from "@aws-sdk/client-ec2";

export function target() {
  const env = process.env;
  if (env.EC2BRIDGE_ENDPOINT) {
    return {
      endpoint: env.EC2BRIDGE_ENDPOINT,
      region: env.EC2BRIDGE_REGION || "us-east-1",
      accessKeyId: env.EC2BRIDGE_ACCESS_KEY,
      secretAccessKey: env.EC2BRIDGE_SECRET_KEY,
      cloudstack: env.EC2BRIDGE_CLOUDSTACK_ENDPOINT,
    };
  }
  if (!env.EC2BRIDGE_READY_FILE) {
    throw new Error("set EC2BRIDGE_ENDPOINT (+ EC2BRIDGE_ACCESS_KEY/EC2BRIDGE_SECRET_KEY) or EC2BRIDGE_READY_FILE");
  }
  const ready = JSON.parse(readFileSync(env.EC2BRIDGE_READY_FILE, "utf8"));
  const user = ready.users.find((u) => !u.is_admin) || ready.users[0];
  return {
    endpoint: ready.endpoint,
    region: ready.region,
    accessKeyId: user.access_key,
    secretAccessKey: user.secret_key,
    cloudstack: ready.cloudstack_endpoint,
  };
}

// An EC2 client of the target's user (another secret for signature tests); no SDK retries, so a
// test sees the gateway's first answer.
export function ec2Client(T, secretAccessKey = T.secretAccessKey) {
  return new EC2Client({
    endpoint: T.endpoint,
    region: T.region,
    credentials: { accessKeyId: T.accessKeyId, secretAccessKey },
    maxAttempts: 1,
  });
}
