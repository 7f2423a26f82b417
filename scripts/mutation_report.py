"""Per-module mutation score from the last ``mutmut run`` in this folder (docs/testing.md).

    python scripts/mutation_report.py            # markdown table
    python scripts/mutation_report.py --survivors zoo.weights.refs   # the survivors' diffs

Score = (killed + caught by mypy) / (those + survived + no tests + timeouts): a mutant no
selected test reaches counts against the score, as a survivor does.  Mutants not checked yet are listed apart.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter, defaultdict

# "caught by type check": mypy rejects the mutant (CI type-checks zoo/), so the suite catches it
CAUGHT = ("killed", "caught by type check")
COUNTED = (*CAUGHT, "survived", "no tests", "timeout", "suspicious")


def results() -> list[tuple[str, str]]:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            rows.append((name, status.strip()))
    return rows


def module_of(mutant: str) -> str:
    """``zoo.weights.refs.x_parse_hub_reference__mutmut_3`` -> ``zoo.weights.refs``."""
    return mutant.split(".x", 1)[0]


def table(rows: list[tuple[str, str]]) -> str:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in rows:
        per[module_of(name)][status] += 1
    lines = ["| module | mutants | killed | by mypy | survived | no tests | not checked | score |",
             "|---|---|---|---|---|---|---|---|"]
    total: Counter[str] = Counter()
    for module in sorted(per):
        c = per[module]
        total.update(c)
        lines.append(_row(module, c))
    lines.append(_row("**all**", total))
    return "\n".join(lines)


def _row(label: str, c: Counter[str]) -> str:
    counted = sum(c[s] for s in COUNTED)
    score = f"{100 * sum(c[s] for s in CAUGHT) / counted:.1f}%" if counted else "-"
    return (f"| {label} | {sum(c.values())} | {c['killed']} | {c['caught by type check']} "
            f"| {c['survived'] + c['timeout'] + c['suspicious']} "
            f"| {c['no tests']} | {c['not checked']} | {score} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--survivors", metavar="MODULE", help="print the diff of every survivor of MODULE")
    args = ap.parse_args()
    rows = results()
    if not args.survivors:
        print(table(rows))
        return
    for name, status in rows:
        if module_of(name) == args.survivors and status in ("survived", "no tests"):
            diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name],
                                  capture_output=True, text=True).stdout
            print(f"## {name} ({status})")
            print("\n".join(ln for ln in diff.splitlines() if ln.startswith(("-", "+"))
                            and not ln.startswith(("---", "+++"))))


if __name__ == "__main__":
    main()
