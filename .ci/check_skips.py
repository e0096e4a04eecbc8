"""Fail CI when the test run skipped a test it did not expect to skip.

    python .ci/check_skips.py JUNIT_XML [--allow TEST_ID_PREFIX ...]

Reads the JUnit XML report of the run (pytest --junitxml), prints every
skipped test with its reason, and exits 1 when one of them does not start with
an allowed prefix (``tests/test_report.py::test_report_renders_in_headless_chromium``,
say).  CI has the shared data (``VSUM_REQUIRE_DATA=1``) and every dependency,
so by default no skip is expected.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET


def skipped_tests(junit_path: str) -> list[tuple[str, str]]:
    """``(test id, reason)`` of every skipped test case in a JUnit XML report."""
    out = []
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        skip = case.find("skipped")
        if skip is None:
            continue
        module = case.get("classname", "").replace(".", "/")
        test_id = f"{module}.py::{case.get('name')}"
        out.append((test_id, skip.get("message") or (skip.text or "").strip()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit")
    parser.add_argument("--allow", action="append", default=[], help="test id prefix that may skip")
    args = parser.parse_args(argv)
    skipped = skipped_tests(args.junit)
    unexpected = [(t, r) for t, r in skipped if not any(t.startswith(a) for a in args.allow)]
    for test_id, reason in skipped:
        mark = "UNEXPECTED" if (test_id, reason) in unexpected else "allowed"
        print(f"skipped ({mark}): {test_id}: {reason}")
    if unexpected:
        print(f"check_skips: {len(unexpected)} unexpected skip(s); CI has the data and the dependencies, "
              f"so every test must run", file=sys.stderr)
        return 1
    print(f"check_skips: {len(skipped)} skipped, none unexpected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
