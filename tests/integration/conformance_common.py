"""Shared by conformance_table.py (MQTT 3.1.1) and conformance5_table.py (MQTT 5.0): find the
normative-statement ids cited by the integration tests, render the conformance table, and write
it or check that the committed copy is current."""
import ast
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
WHO = {"S": "server", "B": "both", "C": "client"}


def read_test_files(tests_dir):
    """(name, source) of every tests_dir/test_*.py, in name order."""
    for name in sorted(os.listdir(tests_dir)):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(tests_dir, name)) as f:
                yield name, f.read()


def spans_of_tests(src):
    """(first line, last line, name) of each top-level test function or class, decorators
    included."""
    spans = []
    for node in ast.parse(src).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("test"):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            spans.append((start, node.end_lineno, node.name))
    return spans


def scan_tests(id_re, tests_dir=HERE):
    """(cites, stray): cites maps id -> sorted 'file::test' citing it (docstrings and
    comments inside a test); stray maps each id cited outside any test to its 'file:line'
    places (such a citation counts for no statement)."""
    cites, stray = {}, {}
    for name, src in read_test_files(tests_dir):
        spans = spans_of_tests(src)
        for lineno, line in enumerate(src.splitlines(), 1):
            for m in id_re.finditer(line):
                owner = next((n for s, e, n in spans if s <= lineno <= e), None)
                if owner is None:
                    stray.setdefault(m.group(1), []).append(f"{name}:{lineno}")
                else:
                    cites.setdefault(m.group(1), set()).add(f"{name[:-3]}::{owner}")
    return {k: sorted(v) for k, v in cites.items()}, stray


def counts_line(statements, cites):
    n_server = sum(1 for s in statements if s[1] != "C")
    n_tested = sum(1 for s in statements if s[1] != "C" and s[0] in cites)
    return (f"Server-side statements (server or both): {n_server}; cited by tests: {n_tested}; "
            f"with a reason instead: {n_server - n_tested}. Client-only statements: "
            f"{len(statements) - n_server}.\n")


def render(head, statements, reasons, cites, label, tail):
    """The document: head (paragraphs, each ending in a newline), the counts line, the table
    (ids shown as label + id), the ids cited but unknown, then tail."""
    known = {s[0] for s in statements}
    unknown = sorted(set(cites) - known)
    out = list(head)
    out.append(counts_line(statements, cites))
    out.append("| Statement | Binds | Requirement (summary) | Tests or reason |")
    out.append("|---|---|---|---|")
    for sid, who, summary in statements:
        tests = cites.get(sid)
        if tests:
            cell = "<br>".join(f"`{t}`" for t in tests)
        else:
            cell = "not tested: " + reasons.get(sid, "**MISSING: no test and no reason**")
        out.append(f"| {label}{sid} | {WHO[who]} | {summary} | {cell} |")
    if unknown:
        out.append("\nIds cited in tests but not in the statement list: " +
                   ", ".join(unknown) + "\n")
    out.append(tail)
    return "\n".join(out) + "\n", unknown


def problems(statements, reasons, cites, stray, label):
    """Everything that makes a table wrong, apart from a stale document: a statement list
    that is not one entry per id with a known binding, a statement that no test cites and
    that has no reason, a reason kept for a statement a test now cites or for no statement,
    and an id cited (in a test or anywhere else in a test file) that is no statement."""
    found = []
    ids = [s[0] for s in statements]
    known = set(ids)
    found += [f"listed twice: {label}{i}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    found += [f"unknown binding {s[1]!r}: {label}{s[0]}" for s in statements if s[1] not in WHO]
    found += [f"no test and no reason: {label}{i}" for i in ids
              if i not in cites and i not in reasons]
    found += [f"cited by {', '.join(cites[i])} but still has a reason: {label}{i}"
              for i in ids if i in cites and i in reasons]
    found += [f"reason for no statement: {label}{i}" for i in sorted(set(reasons) - known)]
    found += [f"cited by {', '.join(cites[i])} but not a statement: {label}{i}"
              for i in sorted(set(cites) - known)]
    found += [f"cited outside any test at {', '.join(where)} and not a statement: {label}{i}"
              for i, where in sorted(stray.items()) if i not in known]
    return found


def prune_reasons(path, reasons, cites):
    """Delete from the REASONS dict of the source file at path (and from reasons) the entries
    of the statements that tests now cite; return their ids. An entry is its line
    '    "id": ...' and the continuation lines indented deeper."""
    stale = sorted(set(reasons) & set(cites))
    if not stale:
        return []
    with open(path) as f:
        lines = f.read().split("\n")
    start = lines.index("REASONS = {")
    end = lines.index("}", start)
    kept, drop = lines[:start + 1], False
    for line in lines[start + 1:end]:
        m = re.match(r'    "([^"]+)": ', line)
        if m:
            drop = m.group(1) in stale
        elif not line.startswith("     "):
            drop = False
        if not drop:
            kept.append(line)
    with open(path, "w") as f:
        f.write("\n".join(kept + lines[end:]))
    for sid in stale:
        del reasons[sid]
    return stale


def write_or_check(doc, text, problems, argv=None):
    """With --check: 0 if doc holds exactly text and there are no problems, else print why and
    return 1. Without: write doc and report the problems (the exit status is still 0, as
    writing is how a stale doc gets fixed)."""
    argv = sys.argv[1:] if argv is None else argv
    rel = os.path.relpath(doc, REPO)
    if "--check" in argv:
        try:
            with open(doc) as f:
                current = f.read()
        except OSError:
            current = ""
        if current != text:
            problems = [f"{rel} is stale: regenerate it"] + list(problems)
        for p in problems:
            print(f"conformance: {p}")
        return 1 if problems else 0
    os.makedirs(os.path.dirname(doc), exist_ok=True)
    with open(doc, "w") as f:
        f.write(text)
    print(f"wrote {rel}" + "".join(f"\nconformance: {p}" for p in problems))
    return 0
