"""What every other layer needs of a store: the typed interface that a backend implements.

    Store                     one database: versions, a read snapshot, an import, API keys, settings
    ├── Snapshot              one consistent read of users and trades (what the engine's index loads)
    ├── ImportTransaction     one all-or-nothing write of users and trades (what an import runs in)
    │   └── TradeWriter       the trades of that write, in file order, with their packed copies
    ├── KeyRows               API key rows (only a hash of each secret) and their kept lookup
    ├── VersionReader         the data version, read again and again on a connection kept open
    └── CommitStamp           has anything committed since I last looked? never waits

SQLite (`SQLiteStore`) implements it; a second backend is a new module implementing the same
protocols, chosen by `open_store`. Amounts are integer micro-USDC, times integer UTC seconds, `kind`
0 (human) or 1 (agent), users and trades referred to by the store's integer ids (`ref`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
TradeRow = tuple[str, int, int, int, int]
"""(trade_id, user ref, ts, volume, pnl) of one trade to write."""
Stamp = tuple[int, int]
"""(which connection, its commit counter): equal only while nothing was committed in between; a
reopened connection's stamps are greater than, and never equal to, any older one."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about an API key: never the secret."""

    id: int
    name: str
    prefix: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None
    scopes: tuple[str, ...] = ("read",)
    """What the key may do (`models.Scope` values)."""
    expires_at: int | None = None
    """Unix seconds from which the key is refused; None: it never expires."""

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def expired(self, now: float) -> bool:
        """Whether the key is past its expiry at `now`."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True, slots=True)
class AsciiIds:
    """Ids of ASCII text without line breaks as one byte matrix: row i holds id i's `lengths[i]` bytes,
    zero padded to the widest. What a bulk writer copies as it is, without a Python string an id
    (`TradeColumns.ascii_ids`)."""

    text: NDArray[np.uint8]
    lengths: I64

    @classmethod
    def of(cls, ids: Sequence[str]) -> AsciiIds | None:
        """`ids` as a byte matrix, or None if none is given or one is not ASCII or holds a line break."""
        joined = "".join(ids)
        if not ids or not joined.isascii() or "\n" in joined:
            return None
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        width = int(lengths.max())
        if width == lengths.min():
            return cls(
                np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(len(ids), width), lengths
            )
        text = np.frombuffer(b"".join(i.encode("ascii").ljust(width, b"\0") for i in ids), dtype=np.uint8)
        return cls(text.reshape(len(ids), width), lengths)

    def texts(self) -> list[str]:
        """The ids as Python strings."""
        count, width = self.text.shape
        joined = np.empty((count, width + 1), dtype=np.uint8)
        joined[:, :width] = self.text
        joined[:, width] = ord("\n")
        if int(self.lengths.min()) != width:  # the padding of narrower ids cut out
            joined = joined[np.arange(width + 1) <= self.lengths[:, None]]
            joined[np.cumsum(self.lengths + 1) - 1] = ord("\n")
        texts = joined.tobytes().decode("ascii").split("\n")
        texts.pop()  # the empty text after the last newline
        return texts


class TradeColumns(Protocol):
    """Trades as columns, in file order: ids as text, the rest int64 (users by ref)."""

    @property
    def lines(self) -> int: ...
    @property
    def trade_ids(self) -> list[str]: ...
    @property
    def ascii_ids(self) -> AsciiIds | None:
        """The same ids as a byte matrix, when they are ASCII and the columns hold them so."""
        ...

    @property
    def user_ref(self) -> I64: ...
    @property
    def ts(self) -> I64: ...
    @property
    def volume(self) -> I64: ...
    @property
    def pnl(self) -> I64: ...


class PreparedTrades(Protocol):
    """Trade columns made ready for one backend's bulk insert (see `TradeWriter.prepare`)."""

    @property
    def rows(self) -> TradeColumns: ...


class RepeatedTradeIds(Exception):
    """A writer that loaded an empty store's trades before checking their trade_ids found, once it
    checked them, that one is repeated: it has rolled back every trade it wrote. The caller writes
    them again with a new writer from the same `ImportTransaction.trades`, which checks them as they
    come (the first row of a repeated trade_id wins). Raised at most once an import."""


class TradeWriter(Protocol):
    """The trades of one import, written in order: the first row of a repeated trade_id wins and a
    stored trade never changes. Also keeps the packed copies and the store's totals."""

    def prepare(self, rows: TradeColumns) -> PreparedTrades:
        """The rows made ready to write; pure, so it may run on another thread ahead of the writes."""
        ...

    def write(self, rows: Sequence[TradeRow]) -> int:
        """Write rows; return how many were new (the others were already stored)."""
        ...

    def write_prepared(self, prepared: PreparedTrades) -> int:
        """Write prepared rows; return how many were new."""
        ...

    def finish(self) -> None:
        """Check that every user the new trades name exists and record the store's new totals;
        raises (and the import is rolled back) if either fails. `write`, `write_prepared` and
        `finish` may raise `RepeatedTradeIds` (see there)."""
        ...


class ImportTransaction(Protocol):
    """One all-or-nothing write: committed when the `Store.importing` block ends, else rolled back."""

    def data_version(self) -> int:
        """The data version before this import."""
        ...

    def set_data_version(self, version: int) -> None:
        """Record that this import makes `version`, committed with it."""
        ...

    def user_refs(self) -> dict[str, int]:
        """Every stored user_id and its ref."""
        ...

    def insert_user(self, user_id: str, kind: int, capital: int, created_at: int, version: int) -> int:
        """A new user, marked changed in `version`; returns its ref."""
        ...

    def update_user(self, ref: int, kind: int, capital: int, version: int) -> None:
        """A stored user's new kind and capital (its created_at is kept), marked changed in `version`."""
        ...

    def rewrite_user(self, ref: int, kind: int, capital: int, created_at: int) -> None:
        """A user inserted by this same import, rewritten whole by a later row."""
        ...

    def trades(self) -> TradeWriter:
        """The writer of this import's trades."""
        ...


class Snapshot(Protocol):
    """One consistent read of the store, for as long as the `Store.snapshot` block lasts."""

    def data_version(self) -> int:
        """The data version this snapshot sees."""
        ...

    def users_changed_since(self, version: int) -> I64:
        """The users changed by imports after `version`: rows (ref, kind, capital), shape (n, 3)."""
        ...

    def last_trade_id(self) -> int:
        """The highest trade ref (trades are numbered in the order they were stored); 0 if none."""
        ...

    def trade_columns(self, after: int, upto: int) -> Iterator[tuple[I64, I64, I64, I64]]:
        """Blocks of (user ref, ts, volume, pnl) of the trades with after < ref <= upto, in order."""
        ...

    def trade_fingerprint(self, ref: int) -> str:
        """Trade `ref`'s stored row as text ('' if there is none), to tell this store's history from
        another's (a restored backup, a replaced file)."""
        ...


class KeyLookup(Protocol):
    """API key rows looked up on every request, on a connection kept open; thread-safe."""

    def by_digest(self, digest: bytes) -> tuple[KeyInfo, bytes] | None:
        """The key whose secret hashes to `digest`, with the stored hash."""
        ...

    def by_id(self, key_id: int) -> KeyInfo | None:
        """The key with this id."""
        ...

    def secret(self, name: str) -> bytes | None:
        """The setting `name` as stored now (None: none yet)."""
        ...

    def close(self) -> None:
        """Release the kept connection (the next lookup opens another)."""
        ...


class KeyRows(Protocol):
    """API keys: only the SHA-256 of each secret is stored."""

    def create(
        self,
        name: str,
        prefix: str,
        digest: bytes,
        created_at: int,
        scopes: tuple[str, ...] = ("read",),
        expires_at: int | None = None,
    ) -> KeyInfo:
        """Store a new key."""
        ...

    def all(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        ...

    def revoke(self, key_id: int, at: int) -> KeyInfo | None:
        """Mark a key revoked at `at` (a key revoked before keeps its first time); None if no such key."""
        ...

    def touch(self, key_id: int, at: int) -> bool:
        """Record the key's last use, unless that would wait for another writer; True if recorded."""
        ...

    def lookup(self) -> KeyLookup:
        """A lookup of its own, for a caller that asks on every request."""
        ...


class VersionReader(Protocol):
    """The data version, read on a connection kept open; thread-safe."""

    def read(self) -> int:
        """The number of imports committed so far, by any process."""
        ...

    def close(self) -> None:
        """Release the kept connection (the next read opens another)."""
        ...


class CommitStamp(Protocol):
    """The store's commit stamp, read on the event loop without ever waiting."""

    def read(self) -> Stamp | None:
        """The current stamp, or None when it cannot be had at once (then ask the store itself)."""
        ...

    def close(self) -> None:
        """Release what the stamp holds open (the next read's stamps match no older one)."""
        ...


class Store(Protocol):
    """One database: the durable truth of users, trades, API keys and settings."""

    @property
    def location(self) -> str:
        """Where the store is, for messages and logs (never a password)."""
        ...

    @property
    def keys(self) -> KeyRows:
        """The API keys."""
        ...

    @property
    def index_path(self) -> Path | None:
        """Where a ready-built index of this store may be kept (a file beside it); None: nowhere."""
        ...

    def data_version(self) -> int:
        """The number of imports committed so far (by any process)."""
        ...

    def schema_version(self) -> int:
        """The schema version the database holds."""
        ...

    def versions(self) -> VersionReader:
        """A reader of the data version of its own."""
        ...

    def stamp(self) -> CommitStamp:
        """A commit stamp of its own."""
        ...

    def snapshot(self) -> AbstractContextManager[Snapshot]:
        """One consistent read."""
        ...

    def importing(self) -> AbstractContextManager[ImportTransaction]:
        """One all-or-nothing write, waiting its turn behind other writers."""
        ...

    def secret(self, name: str, generate: Callable[[], bytes]) -> bytes:
        """The setting `name`, made with `generate` and stored the first time it is asked for (once,
        whatever the number of processes asking at the same time)."""
        ...

    def replace_secret(self, name: str, value: bytes) -> None:
        """Store `value` as the setting `name`, whatever it was."""
        ...

    def backup(self, destination: Path) -> int:
        """A consistent copy of the store at the new file `destination`, taken while others read and
        write; returns the copy's data version."""
        ...

    def check(self) -> list[str]:
        """Every problem found in the store (none: it is sound)."""
        ...

    def close(self) -> None:
        """Release what the store itself holds open (a pool); what it lent out closes on its own."""
        ...
