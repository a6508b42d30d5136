"""docs/conformance.md and docs/conformance-mqtt5.md are generated from the test files and must
be current."""
import os
import subprocess
import sys

import conformance5_table
import conformance_common

HERE = os.path.dirname(os.path.abspath(__file__))
# Built at run time: written out, these ids would be citations of this file.
V5 = "MQTT" + "5-"
V311 = "MQTT" + "-"


def run_check(script):
    r = subprocess.run([sys.executable, os.path.join(HERE, script), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_conformance_doc_current():
    """Every server-side statement is cited by a test or has a reason, and the doc is current
    (regenerate with tests/integration/conformance_table.py)."""
    run_check("conformance_table.py")


def test_conformance5_doc_current():
    """The MQTT 5.0 table: every statement is cited by a test or has a reason, no cited
    statement keeps a reason, every MQTT5- id a test file cites is a statement, and the doc is
    current (regenerate with tests/integration/conformance5_table.py)."""
    run_check("conformance5_table.py")


def fake_tests(tmp_path, body):
    """The problems a fake test directory has, but the statements it simply does not cite (the
    real tests cite those: a fake directory cites nearly nothing)."""
    (tmp_path / "test_fake.py").write_text(body)
    return [p for p in conformance5_table.collect(str(tmp_path))[1]
            if not p.startswith("no test and no reason: ")]


# Two statements that have a reason today (whichever they are: reasons go as tests come).
WITH_REASON = sorted(conformance5_table.REASONS)[:2]


def test_conformance5_check_rejects_unknown_and_stale_ids(tmp_path):
    """A typo in a cited id fails, in a test or outside one; so does a reason kept for a
    statement a test now cites."""
    found = fake_tests(tmp_path, f'''"""Module docstring cites [{V5}3.1.2] by mistake."""


def test_typo():
    """[{V5}3.1.2-99] and [{V5}4.2-1] are no statements."""


def test_cites_one_with_a_reason():
    """[{V5}{WITH_REASON[0]}] a statement that has a reason."""
''')
    assert f"cited by test_fake::test_typo but not a statement: {V5}3.1.2-99" in found
    assert f"cited by test_fake::test_typo but not a statement: {V5}4.2-1" in found
    assert f"cited outside any test at test_fake.py:1 and not a statement: {V5}3.1.2" in found
    assert (f"cited by test_fake::test_cites_one_with_a_reason but still has a reason: "
            f"{V5}{WITH_REASON[0]}") in found
    assert len(found) == 4, found


def test_conformance5_check_needs_a_test_or_a_reason(tmp_path):
    """A statement with neither a test nor a reason fails, whoever it binds."""
    cites, stray = conformance_common.scan_tests(conformance5_table.ID_RE, str(HERE))
    reasons = dict(conformance5_table.REASONS)
    for sid in WITH_REASON:
        del reasons[sid]
    found = conformance_common.problems(conformance5_table.STATEMENTS, reasons, cites, stray,
                                        V5)
    assert sorted(found) == sorted(f"no test and no reason: {V5}{sid}" for sid in WITH_REASON)


def test_conformance5_check_rejects_a_stale_doc(tmp_path, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text("old\n")
    assert conformance_common.write_or_check(str(doc), "new\n", [], ["--check"]) == 1
    assert "stale" in capsys.readouterr().out
    assert conformance_common.write_or_check(str(doc), "new\n", [], []) == 0
    assert conformance_common.write_or_check(str(doc), "new\n", [], ["--check"]) == 0


def test_conformance5_check_rejects_311_ids_in_v5_files(tmp_path):
    """An MQTT 5 test file citing [MQTT-x.x.x-y] most likely forgot the 5: it would count for
    the 3.1.1 statement of that number."""
    (tmp_path / "test_mqtt5_fake.py").write_text(f'''
def test_forgot_the_5():
    """[{V311}3.1.2-24] maximum packet size."""
''')
    found = [p for p in conformance5_table.collect(str(tmp_path))[1]
             if not p.startswith("no test and no reason: ")]
    assert found == [f"MQTT 3.1.1 id in an MQTT 5 test file at test_mqtt5_fake.py:3 "
                     f"(write {V5}3.1.2-24): {V311}3.1.2-24"]


def test_prune_drops_only_the_reasons_of_cited_statements(tmp_path):
    src = tmp_path / "table.py"
    src.write_text('X = 1\nREASONS = {\n    "1.1.1-1": "one",\n    "1.1.1-2": "two, "\n'
                   '               "on two lines",\n    "1.1.1-3": X,\n}\nY = 2\n')
    reasons = {"1.1.1-1": "one", "1.1.1-2": "two, on two lines", "1.1.1-3": 1}
    cites = {"1.1.1-2": ["test_a::test_b"], "9.9.9-9": ["test_a::test_c"]}
    assert conformance_common.prune_reasons(str(src), reasons, cites) == ["1.1.1-2"]
    assert src.read_text() == ('X = 1\nREASONS = {\n    "1.1.1-1": "one",\n    "1.1.1-3": X,\n'
                               '}\nY = 2\n')
    assert reasons == {"1.1.1-1": "one", "1.1.1-3": 1}
    assert conformance_common.prune_reasons(str(src), reasons, cites) == []
