#!/usr/bin/env python3
"""Instructions per request, repeatable on a loaded machine: the gateway runs under
`valgrind --tool=callgrind` with instrumentation off, gets warm (one request of each kind), then
collects over a fixed request sequence only; the simulator runs natively. Prints the gateway's
instructions (Ir) per request for each scenario and keeps the callgrind files for
`callgrind_annotate`.

  python3 bench/callgrind.py --bin before=/path/a --bin after=target/release/ec2bridge \
      [--only small,large,paging] [--keep DIR]

Scenarios: `small` 10 VMs, 100 DescribeInstances (SigV4); `large` 1,000 VMs, 3 DescribeInstances;
`run` 30 RunInstances of one VM (and the deploy watchers' polls after them);
`paging` 10,000 VMs, the first 3 pages of DescribeInstances MaxResults=1000 (NextToken; not in
the default set: a binary that lists all 10,000 VMs per page takes minutes per request under
valgrind, past the client's 120 s timeout).
"""
import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("bench_run", os.path.join(HERE, "run.py"))
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)

OUT = {"path": None}
_proc, _wait = run.Proc, run.wait_port


class CallgrindProc(_proc):
    """`ec2bridge serve` under callgrind, instrumentation off until `callgrind_control -i on`."""

    def __init__(self, args, env, logpath):
        if args[1:2] == ["serve"]:
            args = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    "--callgrind-out-file=" + OUT["path"]] + args
        super().__init__(args, env, logpath)


run.Proc = CallgrindProc
run.wait_port = lambda port, deadline_s=600.0, step=0.05: _wait(port, deadline_s, step)


def ctl(pid, *args):
    subprocess.run(["callgrind_control"] + list(args) + [str(pid)], check=True, stdout=subprocess.DEVNULL)


def totals(path):
    """The dump's `totals:` line (its `summary:` line reads 0 when instrumentation was off at
    start)."""
    found = 0
    for line in open(path):
        if line.startswith("totals:"):
            found = int(line.split()[1])
    return found


def measure(binary, vms, warm, sequence, out):
    """Ir of the gateway over `sequence` (a function of the stack returning the request count)."""
    OUT["path"] = out
    with tempfile.TemporaryDirectory(prefix="ec2bridge-cg-") as tmp:
        st = run.Stack(binary, vms, tmp)
        try:
            warm(st)
            time.sleep(0.5)
            ctl(st.gw.pid, "-i", "on")
            n = sequence(st)
            ctl(st.gw.pid, "-i", "off")
            ctl(st.gw.pid, "-d")
            time.sleep(1.0)
        finally:
            st.stop()
    dumps = sorted(glob.glob(out + "*"), key=os.path.getmtime)
    ir = sum(totals(d) for d in dumps if not d.endswith(".txt"))
    return ir, n


def describe_n(n):
    def seq(st):
        for _ in range(n):
            st.call("Action=DescribeInstances&Version=2016-11-15")
        return n
    return seq


def pages(n):
    def seq(st):
        token = None
        for i in range(n):
            body = "Action=DescribeInstances&Version=2016-11-15&MaxResults=1000"
            if token:
                body += "&NextToken=" + run.q(token)
            token = run.first_tag(st.call(body), "nextToken")
        return n
    return seq


RUN_BODY = {}


def run_warm(st):
    image = run.first_tag(st.call("Action=DescribeImages&Version=2016-11-15"), "imageId")
    RUN_BODY["body"] = ("Action=RunInstances&Version=2016-11-15&ImageId=%s&InstanceType=m1.small"
                        "&MinCount=1&MaxCount=1" % image)
    st.call(RUN_BODY["body"])  # steady state: zones, offerings and templates cached


def run_n(n):
    def seq(st):
        for _ in range(n):
            st.call(RUN_BODY["body"])
        time.sleep(3.0)  # the deploy watchers' polls after the answers count too
        return n
    return seq


SCENARIOS = {
    "small": ("DescribeInstances SigV4, 10 VMs (100 requests)", 10,
              lambda st: st.call("Action=DescribeInstances&Version=2016-11-15"), describe_n(100)),
    "large": ("DescribeInstances SigV4, 1,000 VMs (3 requests)", 1000,
              lambda st: st.call("Action=DescribeInstances&Version=2016-11-15"), describe_n(3)),
    "paging": ("DescribeInstances MaxResults=1000 over 10,000 VMs (first 3 pages)", 10000,
               lambda st: st.call("Action=DescribeInstances&Version=2016-11-15&MaxResults=5"), pages(3)),
    "run": ("RunInstances SigV4, 1 VM each (30 requests, with the watchers' work after the answers)", 10,
            run_warm, run_n(30)),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", action="append", default=[], help="LABEL=PATH (repeatable)")
    ap.add_argument("--only", default="small,large")
    ap.add_argument("--keep", default=None, help="directory for the callgrind files (default: a temporary one)")
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind not found (apt-get install -y valgrind)")
    bins = [b.split("=", 1) for b in a.bin] or [["gateway", os.path.join(run.REPO, "target", "release", "ec2bridge")]]
    keep = a.keep or tempfile.mkdtemp(prefix="ec2bridge-callgrind-")
    os.makedirs(keep, exist_ok=True)
    print("| scenario | " + " | ".join("%s Ir/request" % l for l, _ in bins) + " |")
    print("|---|" + "---:|" * len(bins))
    for name in [s for s in a.only.split(",") if s]:
        title, vms, warm, seq = SCENARIOS[name]
        cells = []
        for label, path in bins:
            ir, n = measure(path, vms, warm, seq, os.path.join(keep, "%s.%s.cg" % (name, label)))
            cells.append("{:,}".format(ir // n))
        print("| %s | %s |" % (title, " | ".join(cells)), flush=True)
    print("\ncallgrind files: %s (callgrind_annotate FILE | head -60)" % keep)


if __name__ == "__main__":
    main()
