"""Markdown tables of the measurements: every run, and the builds side by side."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable

from bench.ceiling import CeilingRow
from bench.measure import Measurement
from bench.scenarios import Scenario


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def answer_mix(answers: Counter[str]) -> str:
    """`authorization_pending 100%`, or the non-ok answers of a login's steps."""
    total = sum(answers.values())
    if not total:
        return "-"
    steps = any(":" in key for key in answers)
    if steps:
        odd = {k: n for k, n in answers.items() if not k.endswith(":ok")}
        if not odd:
            return "every step ok"
        return ", ".join(f"{k} {n}" for k, n in sorted(odd.items(), key=lambda kv: -kv[1]))
    shares = sorted(answers.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {100 * n / total:.4g}%" for k, n in shares)


def _group(
    measurements: list[Measurement],
) -> dict[tuple[str, str, str], list[Measurement]]:
    groups: dict[tuple[str, str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.backend, m.scenario, m.build), []).append(m)
    return groups


def _row_cells(runs: list[Measurement]) -> list[str]:
    """Each run's ops/s, then medians over the runs, then the answers of all of them."""

    def med(get: Callable[[Measurement], float | None]) -> float | None:
        return _median(get(m) for m in runs)

    answers: Counter[str] = Counter()
    for m in runs:
        answers.update(m.answers)
    notes = ""
    if any("pool" in m.extra for m in runs):
        # None: no code was polled twice within a run.
        gaps = [float(m.extra["min_revisit_s"]) for m in runs if m.extra.get("min_revisit_s")]
        revisit = f"min revisit {min(gaps):.1f} s" if gaps else "no code polled twice"
        notes = f" (pool {runs[-1].extra['pool']}, {revisit})"
    errors = sum(sum(m.socket_errors.values()) for m in runs)
    if errors:
        notes += f", socket errors {errors}"
    return [
        " / ".join(_num(m.ops_per_s) for m in runs),
        f"**{_num(med(lambda m: m.ops_per_s))}**",
        _num(med(lambda m: m.latency_ms.get("p50")), 1),
        _num(med(lambda m: m.latency_ms.get("p99")), 1),
        _num(med(lambda m: m.server_cpu_ms_per_op), 2),
        _num(med(lambda m: 1000 / m.server_cpu_ms_per_op if m.server_cpu_ms_per_op else None)),
        _pct(med(lambda m: m.server_core_share)),
        _pct(med(lambda m: m.server_core_others_share + m.server_core_steal_share)),
        _num(med(lambda m: m.database_cpu_ms_per_op), 2),
        _num(med(lambda m: m.redis_cpu_ms_per_op), 2),
        _pct(med(lambda m: m.loadgen_core_share)),
        answer_mix(answers) + notes,
    ]


def runs_table(measurements: list[Measurement], scenarios: list[Scenario]) -> str:
    """One row per backend, scenario and build: each run's ops/s, then medians over runs."""
    titles = {s.name: s.title for s in scenarios}
    order = {s.name: n for n, s in enumerate(scenarios)}
    lines = [
        "| backend | scenario | build | conns | per run (ops/s) | median | p50 ms | p99 ms "
        "| server CPU ms/op | ops per server CPU-s | server core: server | : others + steal "
        "| PG CPU ms/op | Redis CPU ms/op (shared) | wrk core busy | answers |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = _group(measurements)
    for (backend, scenario, build), runs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))
    ):
        cells = [backend, titles.get(scenario, scenario), build, str(runs[0].connections)]
        lines.append("| " + " | ".join(cells + _row_cells(runs)) + " |")
    return "\n".join(lines)


def comparison_table(
    measurements: list[Measurement], scenarios: list[Scenario], before: str, after: str
) -> str:
    """Medians of `before` and `after` side by side, with the ratio after/before."""
    groups = _group(measurements)
    lines = [
        f"A = {before}, B = {after}; medians over the interleaved runs",
        "",
        "| backend | scenario | A ops/s | B ops/s | B/A | A p99 ms | B p99 ms "
        "| A CPU ms/op | B CPU ms/op |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    backends = sorted({m.backend for m in measurements})
    for backend in backends:
        for s in scenarios:
            a = groups.get((backend, s.name, before), [])
            b = groups.get((backend, s.name, after), [])
            if not a or not b:
                continue
            a_ops = _median(m.ops_per_s for m in a)
            b_ops = _median(m.ops_per_s for m in b)
            ratio = b_ops / a_ops if a_ops and b_ops is not None else None
            lines.append(
                f"| {backend} | {s.title} | {_num(a_ops)} | {_num(b_ops)} | {_num(ratio, 2)} "
                f"| {_num(_median(m.latency_ms.get('p99') for m in a), 1)} "
                f"| {_num(_median(m.latency_ms.get('p99') for m in b), 1)} "
                f"| {_num(_median(m.server_cpu_ms_per_op for m in a), 2)} "
                f"| {_num(_median(m.server_cpu_ms_per_op for m in b), 2)} |"
            )
    return "\n".join(lines)


def ceiling_table(rows: list[CeilingRow]) -> str:
    """The load generator against the stub: how far above the real numbers it can go."""
    lines = [
        "| scenario script | conns | requests/s | ops/s | wrk core busy "
        "| wrk CPU µs/request | wrk alone could send (requests/s) | stub core busy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.title} | {row.connections} | {_num(row.requests_per_s)} "
            f"| {_num(row.ops_per_s)} | {_pct(row.wrk_core_share)} "
            f"| {_num(row.wrk_us_per_request, 1)} | {_num(row.wrk_capacity)} "
            f"| {_pct(row.stub_core_share)} |"
        )
    return "\n".join(lines)
