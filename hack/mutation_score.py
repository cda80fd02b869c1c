"""The mutation score of the decision core, per package and in total, from mutmut's results.

mutmut keeps one `<file>.meta` per mutated file with each mutant's exit code; its own summary has
no per-package split and counts a mutant no test reaches apart from the survivors. Here both are
survivors: a mutant that nothing fails on is a change of behaviour nobody would notice.
Usage: python hack/mutation_score.py MUTANTS_DIR [--survivors]
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from mutmut.stats import status_by_exit_code

KILLED = {"killed", "timeout", "caught by type check"}
UNCOUNTED = {"not checked", "skipped"}


def main(argv: list[str]) -> int:
    mutants = Path(argv[0])
    show_survivors = "--survivors" in argv[1:]
    by_package: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: Counter[str] = Counter()
    for meta in sorted(mutants.glob("src/kvha/**/*.py.meta")):
        package = meta.relative_to(mutants / "src").parts[1]
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            status = status_by_exit_code[code]
            by_package[package][status] += 1
            if status not in KILLED | UNCOUNTED:
                survivors[key.partition("__mutmut_")[0]] += 1
    if not by_package:
        print(f"no mutmut results under {mutants}", file=sys.stderr)
        return 1
    total: Counter[str] = Counter()
    print(f"{'package':<12} {'killed':>7} {'tested':>7} {'score':>7}  not tested")
    for package, counts in sorted(by_package.items()):
        total += counts
        print(_row(package, counts))
    print(_row("total", total))
    if show_survivors:
        print("\nfunctions with the most surviving mutants (see `mutmut results` and `mutmut show NAME`):")
        for function, count in survivors.most_common(25):
            print(f"  {count:4}  {function}")
    return 0


def _row(name: str, counts: Counter[str]) -> str:
    killed = sum(counts[s] for s in KILLED)
    tested = sum(n for s, n in counts.items() if s not in UNCOUNTED)
    score = f"{100 * killed / tested:6.1f}%" if tested else "     -"
    return f"{name:<12} {killed:>7} {tested:>7} {score:>7}  {sum(counts[s] for s in UNCOUNTED)}"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
