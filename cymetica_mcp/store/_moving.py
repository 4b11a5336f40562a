"""What `copy_store` moves from one store to another, whatever their backends: the rows, as the
source's one consistent read hands them out and the target's one transaction takes them in.

    Source  -> Reading   one read transaction: the small tables whole, the trades in blocks by id
    Target  -> Filling   one write transaction: what is there, emptied on request, then filled

Each backend implements both sides (`_sqlite_moving` and `postgres._moving`), so any pair copies:
SQLite to PostgreSQL (moving up), PostgreSQL to a SQLite file (moving down, or a backup to a file).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from cymetica_mcp.store._interface import I64

UserRow = tuple[int, str, int, int, int, int]
"""(id, user_id, kind, capital_micro, created_at, changed_in): a user as stored."""
KeyRow = tuple[int, str, str, bytes, int, int | None, int | None, str, int | None]
"""(id, name, prefix, secret_hash, created_at, last_used_at, revoked_at, scopes, expires_at): an API key
as stored (only the hash of its secret)."""
SettingRow = tuple[str, bytes]
"""(key, value): a setting (the generated JWT secret)."""


@dataclass(frozen=True, slots=True)
class TradeBlock:
    """Consecutive stored trades (in id order), as columns."""

    ids: I64
    trade_ids: list[str]
    user_ref: I64
    ts: I64
    volume: I64
    pnl: I64

    def __len__(self) -> int:
        return len(self.trade_ids)


@dataclass(frozen=True, slots=True)
class Held:
    """What a store holds: a target holding anything is not empty."""

    users: int
    trades: int
    keys: int
    settings: int
    data_version: int

    @property
    def empty(self) -> bool:
        """Nothing stored, and no import ever committed."""
        return not (self.users or self.trades or self.keys or self.settings or self.data_version)

    def __str__(self) -> str:
        counts = (
            (self.users, "user"),
            (self.trades, "trade"),
            (self.keys, "API key"),
            (self.settings, "setting"),
        )
        told = ", ".join(f"{count:,} {name}{'' if count == 1 else 's'}" for count, name in counts)
        return f"{told}, data version {self.data_version}"


class Reading(Protocol):
    """One consistent read of a source store, for as long as its block lasts."""

    def held(self) -> Held:
        """What the source holds."""
        ...

    def users(self) -> list[UserRow]:
        """Every user, by id."""
        ...

    def keys(self) -> list[KeyRow]:
        """Every API key, by id."""
        ...

    def settings(self) -> list[SettingRow]:
        """Every setting, by key."""
        ...

    def trades(self, block_rows: int) -> Iterator[TradeBlock]:
        """Every trade in id order, `block_rows` at a time."""
        ...


class Filling(Protocol):
    """One all-or-nothing write to a target store: committed when its block ends, else rolled back."""

    def held(self) -> Held:
        """What the target holds now (inside this transaction)."""
        ...

    def empty(self) -> None:
        """Delete every user, trade, API key and setting (and what is kept of them)."""
        ...

    def write_users(self, rows: list[UserRow]) -> None:
        """Store the users with their ids."""
        ...

    def write_keys(self, rows: list[KeyRow]) -> None:
        """Store the API keys with their ids."""
        ...

    def write_settings(self, rows: list[SettingRow]) -> None:
        """Store the settings."""
        ...

    def write_trades(self, block: TradeBlock) -> None:
        """Store trades with their ids (after every trade written so far)."""
        ...

    def finish(self, data_version: int, totals: tuple[int, int] | None) -> None:
        """Record the data version and the kept totals (volume, |pnl|; None: no trades), and whatever
        else the backend keeps (identity sequences, notifications), in this transaction."""
        ...


class Source(Protocol):
    """A store to copy from."""

    @property
    def location(self) -> str:
        """Where it is (never a password)."""
        ...

    def reading(self) -> AbstractContextManager[Reading]:
        """One consistent read."""
        ...

    def close(self) -> None:
        """Release what opening it holds (a pool of connections)."""
        ...


class Target(Protocol):
    """A store to copy into."""

    @property
    def location(self) -> str:
        """Where it is (never a password)."""
        ...

    def filling(self) -> AbstractContextManager[Filling]:
        """One all-or-nothing write."""
        ...

    def discard(self) -> None:
        """After a failed copy: remove what opening the target created (a new file), if anything."""
        ...

    def close(self) -> None:
        """Release what opening it holds (a pool of connections)."""
        ...
