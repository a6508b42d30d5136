"""docs/conformance.md is generated from the test files and must be current."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_conformance_doc_current():
    """Every server-side statement is cited by a test or has a reason, and the doc is current
    (regenerate with tests/integration/conformance_table.py)."""
    r = subprocess.run([sys.executable, os.path.join(HERE, "conformance_table.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
