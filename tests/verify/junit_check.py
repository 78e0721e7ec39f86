"""mimo-verify's --report (JSON) and --junit (XML) outputs read by Python's own parsers.

usage: junit_check.py MKFIXTURE QUANTIZE VERIFY

Builds the tiny FP8 artifact, then runs mimo-verify with --report and --junit on it clean and
on three broken copies (a flipped data byte, an unlisted file, the manifest deleted). Each
JSON report must load with json.load, and each JUnit file with xml.etree.ElementTree: one
<testsuite name="mimo-verify"> whose tests/failures/skipped attributes count its <testcase>
children, one testcase per check of the JSON report, a <failure> exactly where the JSON status
is "fail", and the failing check the corruption targets (integrity, integrity, manifest) marked
so. Expected exit codes are those tools/mimo-verify.c documents (0 pass, 1 failed, 3
unreadable).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def check_case(ver, art, want_rc, want_fail, failures):
    rp, xp = art + ".report.json", art + ".junit.xml"
    p = run([ver, art, "--report", rp, "--junit", xp])
    name = os.path.basename(art)
    if p.returncode != want_rc:
        failures.append(f"{name}: exit {p.returncode}, expected {want_rc}\n{p.stdout}")
        return
    with open(rp, encoding="utf-8") as f:
        rep = json.load(f)
    status = {c["name"]: c["status"] for c in rep["checks"]}
    if rep.get("schema_version") != 1 or rep.get("tool") != "mimo-verify":
        failures.append(f"{name}: report header {rep.get('schema_version')} {rep.get('tool')}")
    if rep["verdict"] != ("pass" if want_rc == 0 else "fail"):
        failures.append(f"{name}: verdict {rep['verdict']}")
    for c in ("manifest", "integrity", "signature", "container", "tensors", "inventory", "drafter"):
        if c not in status:
            failures.append(f"{name}: check {c} missing from the report")
    if want_fail and status.get(want_fail) != "fail":
        failures.append(f"{name}: {want_fail} is {status.get(want_fail)}, expected fail")
    if want_rc == 0 and "fail" in status.values():
        failures.append(f"{name}: clean artifact has failing checks {status}")

    suite = ET.parse(xp).getroot()
    if suite.tag != "testsuite" or suite.get("name") != "mimo-verify":
        failures.append(f"{name}: root element {suite.tag} {suite.attrib}")
        return
    cases = suite.findall("testcase")
    xfail = {tc.get("name") for tc in cases if tc.find("failure") is not None}
    xskip = {tc.get("name") for tc in cases if tc.find("skipped") is not None}
    if int(suite.get("tests")) != len(cases) or len(cases) != len(status):
        failures.append(f"{name}: tests={suite.get('tests')}, {len(cases)} testcases, {len(status)} checks")
    if int(suite.get("failures")) != len(xfail) or int(suite.get("skipped")) != len(xskip):
        failures.append(f"{name}: failures/skipped attributes disagree with the testcases")
    jfail = {k for k, v in status.items() if v == "fail"}
    jskip = {k for k, v in status.items() if v == "skipped"}
    if xfail != jfail or xskip != jskip:
        failures.append(f"{name}: JUnit failures {sorted(xfail)} / skips {sorted(xskip)} vs JSON {sorted(jfail)} / {sorted(jskip)}")
    for tc in cases:
        fl = tc.find("failure")
        if fl is not None and not fl.get("message"):
            failures.append(f"{name}: {tc.get('name')}: failure without a message")


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    mk, qz, ver = sys.argv[1:4]
    root = tempfile.mkdtemp(prefix="mimo-vjunit-")
    failures = []
    try:
        src, clean = os.path.join(root, "src"), os.path.join(root, "clean")
        for cmd in ([mk, "--preset", "tiny", "--variant", "fp8", "--out", src, "-q"],
                    [qz, src, clean, "-q", "--max-shard-size", "4M"]):
            p = run(cmd)
            if p.returncode != 0:
                print(f"{cmd[0]} failed: {p.stdout}", file=sys.stderr)
                return 1
        check_case(ver, clean, 0, None, failures)

        flip = os.path.join(root, "flip")
        shutil.copytree(clean, flip)
        shard = sorted(f for f in os.listdir(flip) if f.startswith("model-0"))[0]
        with open(os.path.join(flip, shard), "r+b") as f:
            f.seek(-100, os.SEEK_END)  # inside the last tensor's data
            b = f.read(1)
            f.seek(-100, os.SEEK_END)
            f.write(bytes([b[0] ^ 0x01]))
        check_case(ver, flip, 1, "integrity", failures)

        extra = os.path.join(root, "extra")
        shutil.copytree(clean, extra)
        with open(os.path.join(extra, "notes <&> \".txt"), "w") as f:  # XML-special name
            f.write("x\n")
        check_case(ver, extra, 1, "integrity", failures)

        noman = os.path.join(root, "noman")
        shutil.copytree(clean, noman)
        os.unlink(os.path.join(noman, "mimo-manifest.json"))
        check_case(ver, noman, 3, "manifest", failures)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for f in failures:
        print(f, file=sys.stderr)
    print(f"junit_check: 4 artifacts, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
