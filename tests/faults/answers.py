"""Tabulate what the fault suite's callers saw: `FAULT_ANSWERS=a.jsonl pytest -m faults`, then
`python -m tests.faults.answers a.jsonl` prints, per test and request, the answers and their
slowest time (Markdown)."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any


def main(path: str) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    with open(path) as lines:
        for line in lines:
            answer = json.loads(line)
            test = answer["test"].split("::")[-1]
            groups[(test, answer["what"] or "request")].append(answer)
    print("| test | request | answers | slowest |")
    print("|---|---|---|---|")
    for (test, what), answers in sorted(groups.items()):
        counts: dict[str, int] = defaultdict(int)
        for a in answers:
            status = str(a["status"] or "no answer")
            counts[f"{status} {a['error']}" if a["error"] else status] += 1
        mix = ", ".join(f"{n}x {kind}" for kind, n in sorted(counts.items()))
        slowest = max(a["seconds"] for a in answers)
        print(f"| {test} | {what} | {mix} | {slowest:.2f} s |")


if __name__ == "__main__":
    main(sys.argv[1])
