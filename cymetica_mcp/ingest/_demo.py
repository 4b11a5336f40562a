"""Deterministic, realistic demo data: humans and agents with different habits, ending at `now`.

Agents trade often, around the clock, in smaller clips with steadier returns; humans trade less, mostly
in daytime UTC hours, in larger sizes with wider outcomes. Some users have zero capital. The same seed,
sizes and `now` always give the same rows. `People` and `clips` are those habits, shared with the
live simulator (`_simulator`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cymetica_mcp.windows import DAY, iso

I64 = NDArray[np.int64]


@dataclass(frozen=True)
class DemoSpec:
    """How much demo data to make."""

    users: int = 400
    trades: int = 20_000
    days: int = 40
    seed: int = 7
    agent_share: float = 0.4


@dataclass(frozen=True)
class People:
    """Users' habits: kind, capital (micro-USDC), skill (mean return) and activity (relative trade rate)."""

    is_agent: NDArray[np.bool_]
    capital: I64
    skill: NDArray[np.float64]
    activity: NDArray[np.float64]

    @classmethod
    def drawn(cls, rng: np.random.Generator, n: int, agent_share: float) -> People:
        """`n` users drawn with the demo's habits."""
        is_agent = rng.random(n) < agent_share
        capital = np.where(
            rng.random(n) < 0.06,
            0,
            np.round(np.exp(rng.normal(np.where(is_agent, 6.0, 7.0), 1.1)) * 1_000_000),
        ).astype(np.int64)
        skill = rng.normal(np.where(is_agent, 0.004, -0.002), np.where(is_agent, 0.01, 0.03))
        activity = rng.pareto(1.6, n) + np.where(is_agent, 3.0, 0.6)
        return cls(is_agent, capital, skill, activity)

    def kind(self, i: int) -> str:
        """'agent' or 'human'."""
        return "agent" if self.is_agent[i] else "human"


def clips(rng: np.random.Generator, agent: NDArray[np.bool_], skill: NDArray[np.float64]) -> tuple[I64, I64]:
    """Volume and pnl (micro-USDC) of trades by users of these kinds and skills."""
    size = np.exp(rng.normal(np.where(agent, 4.0, 5.5), 1.0))
    volume = np.maximum(np.round(size * 1_000_000), 1).astype(np.int64)
    pnl = np.round(volume * (skill + rng.normal(0, np.where(agent, 0.02, 0.05)))).astype(np.int64)
    return volume, pnl


def decimal(micro: int) -> str:
    """Micro-USDC as the plain decimal an import reads."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), 1_000_000)
    return f"{sign}{whole}.{frac:06d}".rstrip("0").rstrip(".") if frac else f"{sign}{whole}"


def write_demo(spec: DemoSpec, now: int, folder: Path, chunk: int = 500_000) -> tuple[Path, Path]:
    """Write users.csv and trades.csv for `spec` ending at `now` into `folder`; return their paths."""
    rng = np.random.default_rng(spec.seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = spec.users
    people = People.drawn(rng, n, spec.agent_share)
    created = now - spec.days * DAY - rng.integers(0, 200 * DAY, n)
    users_path, trades_path = folder / "users.csv", folder / "trades.csv"
    with users_path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user_id", "kind", "capital_usdc", "created_at"])
        for i in range(n):
            kind = people.kind(i)
            out.writerow([f"{kind[0]}{i:07d}", kind, decimal(int(people.capital[i])), iso(int(created[i]))])
    weights = people.activity / people.activity.sum()
    with trades_path.open("w", newline="") as f:
        f.write("trade_id,user_id,ts,volume_usdc,pnl_usdc\n")
        done = 0
        while done < spec.trades:
            m = min(chunk, spec.trades - done)
            who = rng.choice(n, size=m, p=weights)
            agent = people.is_agent[who]
            age = rng.random(m) * spec.days * DAY
            ts = now - age.astype(np.int64)
            # humans lean towards 08:00-22:00 UTC: pull night trades of humans into the day
            hour = (ts % DAY) // 3600
            night = ~agent & ((hour < 8) | (hour > 21)) & (rng.random(m) < 0.7)
            ts = np.where(night, ts - (ts % DAY) + 8 * 3600 + rng.integers(0, 14 * 3600, m), ts)
            ts = np.where(ts > now, ts - DAY, ts)  # a shift past now goes to the day before
            volume, pnl = clips(rng, agent, people.skill[who])
            lines = [
                f"t{done + j:010d},{'a' if agent[j] else 'h'}{who[j]:07d},{iso(int(ts[j]))},"
                f"{decimal(int(volume[j]))},{decimal(int(pnl[j]))}\n"
                for j in range(m)
            ]
            f.writelines(lines)
            done += m
    return users_path, trades_path
