"""Live trading, simulated: a batch of users and trades a second with the demo's habits.

Each batch holds about `rate` trades (Poisson), timed within the second before `now`, by users chosen
by their activity; now and then a new user joins (and trades from its first batch). Ids carry the
seed and the start instant, so two runs never collide and a re-sent batch changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from cymetica_mcp.ingest._demo import People, clips, decimal
from cymetica_mcp.windows import iso

START_USERS = 60
"""Users the simulator creates before its first trades."""
JOIN_CHANCE = 0.2
"""Chance that a new user joins in a given second."""
AGENT_SHARE = 0.4


@dataclass(frozen=True)
class Batch:
    """One second of activity as JSON Lines: new users first, then trades (either may be empty)."""

    users: str
    trades: str
    user_count: int
    trade_count: int


@dataclass
class Simulator:
    """Makes batches for successive seconds; deterministic for a (seed, started) pair."""

    seed: int
    started: int
    rate: float
    _rng: np.random.Generator = field(init=False)
    _people: People = field(init=False)
    _named: int = field(init=False, default=0)
    _trades: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, self.started])
        self._people = People.drawn(self._rng, 0, AGENT_SHARE)

    def batch(self, now: int) -> Batch:
        """The users who join and the trades made in the second before `now`."""
        joining = START_USERS if self._named == 0 else int(self._rng.random() < JOIN_CHANCE)
        users = self._join(joining, now)
        n = int(self._rng.poisson(self.rate))
        people = self._people
        weights = people.activity / people.activity.sum()
        who = self._rng.choice(len(weights), size=n, p=weights)
        volume, pnl = clips(self._rng, people.is_agent[who], people.skill[who])
        ts = now - 1 + (self._rng.random(n) < 0.5).astype(np.int64)
        lines = []
        for j in range(n):
            self._trades += 1
            lines.append(
                json.dumps(
                    {
                        "trade_id": f"{self._prefix}t{self._trades}",
                        "user_id": self._user_id(int(who[j])),
                        "ts": iso(int(ts[j])),
                        "volume_usdc": decimal(int(volume[j])),
                        "pnl_usdc": decimal(int(pnl[j])),
                    }
                )
            )
        return Batch(users, "".join(line + "\n" for line in lines), joining, n)

    @property
    def _prefix(self) -> str:
        return f"sim{self.seed}-{self.started}-"

    def _user_id(self, i: int) -> str:
        return f"{self._prefix}{self._people.kind(i)[0]}{i}"

    def _join(self, count: int, now: int) -> str:
        """Draw `count` new users; their JSON Lines."""
        if count == 0:
            return ""
        more = People.drawn(self._rng, count, AGENT_SHARE)
        old = self._people
        self._people = People(
            np.concatenate([old.is_agent, more.is_agent]),
            np.concatenate([old.capital, more.capital]),
            np.concatenate([old.skill, more.skill]),
            np.concatenate([old.activity, more.activity]),
        )
        lines = []
        for i in range(self._named, self._named + count):
            lines.append(
                json.dumps(
                    {
                        "user_id": self._user_id(i),
                        "kind": self._people.kind(i),
                        "capital_usdc": decimal(int(self._people.capital[i])),
                        "created_at": iso(now - 1),
                    }
                )
            )
        self._named += count
        return "".join(line + "\n" for line in lines)
