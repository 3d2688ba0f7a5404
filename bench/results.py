"""A whole bench run as data: saved as JSON, rendered as Markdown (now or later)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.ceiling import CeilingRow
from bench.measure import Measurement
from bench.scenarios import Scenario


@dataclass
class Results:
    header: list[str]  # the facts of the run: date, machine, options, builds
    scenarios: list[Scenario]
    builds: list[str]  # labels; with two, the first is the baseline (A)
    ceiling: list[CeilingRow]
    measurements: list[Measurement]

    def render(self) -> str:
        """Markdown: the facts, the load generator's ceiling, every run, A and B side by side."""
        parts = ["\n".join(self.header)]
        if self.ceiling:
            parts.append("## Load generator ceiling\n\n" + report.ceiling_table(self.ceiling))
        parts.append("## Runs\n\n" + report.runs_table(self.measurements, self.scenarios))
        if len(self.builds) == 2:
            table = report.comparison_table(
                self.measurements, self.scenarios, self.builds[0], self.builds[1]
            )
            parts.append("## Side by side\n\n" + table)
        return "\n\n".join(parts) + "\n"

    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "header": self.header,
                    "scenarios": [asdict(s) for s in self.scenarios],
                    "builds": self.builds,
                    "ceiling": [row.as_dict() for row in self.ceiling],
                    "measurements": [m.as_dict() for m in self.measurements],
                },
                indent=1,
            )
        )

    @classmethod
    def load(cls, path: Path) -> Results:
        raw: dict[str, Any] = json.loads(path.read_text())
        measurements = [Measurement(**m) for m in raw["measurements"]]
        return cls(
            header=list(raw["header"]),
            scenarios=[Scenario(**s) for s in raw["scenarios"]],
            builds=list(raw["builds"]),
            ceiling=[CeilingRow(**row) for row in raw["ceiling"]],
            measurements=measurements,
        )
