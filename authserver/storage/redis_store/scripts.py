"""The Lua scripts of the Redis adapters, with the domain's state and outcome names filled in.

Each script lives in lua/<name>.lua and names states, poll outcomes, claim settlements and
limit kinds as $STATE_<NAME>, $OUTCOME_<NAME>, $SETTLEMENT_<NAME> and $KIND_<NAME>; loading
substitutes the domain enums' values, and a name the domain does not have fails at import, so
the Lua and the domain cannot drift apart silently.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

from authserver.domain.flow import ClaimSettlement, FlowState, PollOutcome
from authserver.domain.limits import LimitKind

_LUA_DIR = Path(__file__).parent / "lua"
_NAMES = (
    {f"STATE_{state.name}": state.value for state in FlowState}
    | {f"OUTCOME_{outcome.name}": outcome.value for outcome in PollOutcome}
    | {f"SETTLEMENT_{settlement.name}": settlement.value for settlement in ClaimSettlement}
    | {f"KIND_{kind.name}": kind.value for kind in LimitKind}
)


@cache
def load_script(name: str) -> str:
    """The source of lua/<name>.lua with the domain's names substituted."""
    return Template((_LUA_DIR / f"{name}.lua").read_text()).substitute(_NAMES)
