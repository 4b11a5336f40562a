"""Deterministic benchmark data: demo rows of a fixed size, seed and `now`, generated once and cached.

Each dataset lives in `benchmarks/data/<key>/` (gitignored), the key naming everything that shapes its
rows (size, users, trades, days, seed, generator version), so a rerun reuses the files and a change
makes a new folder instead of silently reusing stale ones:

- `users.csv`, `trades.csv`: `cymetica_mcp.ingest.write_demo` over 95 days ending at `NOW`;
- `extra.csv`: 10,000 new trades of existing users (80% in the last 24 hours, 20% anywhere in the
  95 days, new trade ids), for the "fresh dashboards after an import" target;
- `store-schema<N>.db`: the store after importing users.csv and trades.csv (pristine: never mutated).

`python -m benchmarks.data --size quick` prepares a dataset and its store without benchmarking.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.store import SCHEMA_VERSION, SQLiteStore
from cymetica_mcp.windows import DAY, iso, parse_instant

NOW: Final = parse_instant("2026-03-20T12:34:56Z")
"""The fixed evaluation instant: the last second of every dataset."""
DAYS: Final = 95
SEED: Final = 7
EXTRA_TRADES: Final = 10_000
GENERATOR: Final = 1
"""Bump when the generated rows change (for the same size and seed), so old caches are not reused."""
DATA_DIR: Final = Path(__file__).resolve().parent / "data"

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Size:
    """A dataset size: how many users and trades."""

    name: str
    users: int
    trades: int


SIZES: Final[dict[str, Size]] = {
    "quick": Size("quick", users=20_000, trades=1_000_000),
    "full": Size("full", users=50_000, trades=10_000_000),
    "100m": Size("100m", users=200_000, trades=100_000_000),
}


@dataclass(frozen=True, slots=True)
class Dataset:
    """The cached files of one size and seed."""

    size: Size
    seed: int
    folder: Path

    @property
    def users_csv(self) -> Path:
        """Every user, as the demo generator wrote them."""
        return self.folder / "users.csv"

    @property
    def trades_csv(self) -> Path:
        """Every trade, as the demo generator wrote them."""
        return self.folder / "trades.csv"

    @property
    def extra_csv(self) -> Path:
        """10,000 new trades of existing users, imported after the main file."""
        return self.folder / "extra.csv"

    @property
    def store_path(self) -> Path:
        """The pristine store (users.csv and trades.csv imported) for this schema version."""
        return self.folder / f"store-schema{SCHEMA_VERSION}.db"

    def has_store(self) -> bool:
        """Whether the pristine store has been built."""
        return self.store_path.is_file()


def dataset(size: Size, seed: int = SEED, log: Log = print) -> Dataset:
    """The dataset of `size` and `seed`, generating its CSV files first if they are not cached."""
    key = f"{size.name}-u{size.users}-t{size.trades}-d{DAYS}-s{seed}-g{GENERATOR}"
    data = Dataset(size, seed, DATA_DIR / key)
    if (data.folder / "complete").is_file():
        return data
    partial = data.folder.with_name(key + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(data.folder, ignore_errors=True)
    log(f"generating {size.trades:,} trades of {size.users:,} users into {data.folder} ...")
    started = time.perf_counter()
    write_demo(DemoSpec(users=size.users, trades=size.trades, days=DAYS, seed=seed), NOW, partial)
    write_extra(partial / "users.csv", partial / "extra.csv", seed)
    (partial / "complete").write_text(f"generated in {time.perf_counter() - started:.1f} s\n")
    partial.rename(data.folder)
    log(f"generated in {time.perf_counter() - started:.1f} s")
    return data


def write_extra(users_csv: Path, out: Path, seed: int, count: int = EXTRA_TRADES) -> None:
    """Write `count` new trades of the users in `users_csv` (deterministic for a seed)."""
    with users_csv.open(newline="") as f:
        users = [row["user_id"] for row in csv.DictReader(f)]
    rng = np.random.default_rng([seed, 1])
    who = rng.integers(0, len(users), count)
    recent = rng.random(count) < 0.8
    age = np.where(recent, rng.integers(0, DAY + 1, count), rng.integers(0, DAYS * DAY, count))
    volume = rng.integers(1, 5_000_000_000, count)  # up to 5,000 USDC, in micro-USDC
    pnl = (volume * rng.normal(0, 0.05, count)).astype(np.int64)
    with out.open("w", newline="") as f:
        f.write("trade_id,user_id,ts,volume_usdc,pnl_usdc\n")
        for i in range(count):
            f.write(
                f"x{i:09d},{users[int(who[i])]},{iso(NOW - int(age[i]))},"
                f"{_decimal(int(volume[i]))},{_decimal(int(pnl[i]))}\n"
            )


def _decimal(micro: int) -> str:
    """Integer micro-USDC as a plain decimal with at most 6 places."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), 1_000_000)
    return f"{sign}{whole}.{frac:06d}" if frac else f"{sign}{whole}"


def adopt_store(path: Path, data: Dataset) -> Path:
    """Make a freshly imported store at `path` the dataset's pristine store (checkpointed, then moved)."""
    settle(path)
    for old in data.folder.glob("store-schema*.db"):
        remove_store(old)
    os.replace(path, data.store_path)
    return data.store_path


def settle(path: Path) -> None:
    """Fold the store's write-ahead log into the main file, so the file alone can be copied or moved."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def keep_store(source: Path, data: Dataset) -> Path:
    """Cache a copy of a freshly imported, settled store as the dataset's pristine one, dropping the
    stores of other schema versions (the cache keeps one)."""
    for old in data.folder.glob("store-schema*.db"):
        if old != data.store_path:
            remove_store(old)
    return copy_store(source, data.store_path)


def copy_store(source: Path, target: Path) -> Path:
    """A byte copy of a settled store (for a run that mutates it)."""
    remove_store(target)
    shutil.copyfile(source, target)
    return target


def remove_store(path: Path) -> None:
    """Delete a store file and its WAL companions."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def ensure_store(data: Dataset, log: Log = print) -> Path:
    """The dataset's pristine store, importing the CSV files in this process if it is not built yet."""
    if data.has_store():
        return data.store_path
    scratch = data.folder / "building.db"
    remove_store(scratch)
    log(f"importing {data.trades_csv} into a new store ...")
    started = time.perf_counter()
    store = SQLiteStore(scratch)
    import_files(store, data.users_csv, None)
    report = import_files(store, None, data.trades_csv)
    log(f"imported {report.trades_inserted:,} trades in {time.perf_counter() - started:.1f} s")
    return adopt_store(scratch, data)


def main() -> None:
    """Prepare a dataset and its store."""
    parser = argparse.ArgumentParser(description="Generate and import a benchmark dataset.")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    data = dataset(SIZES[args.size], args.seed)
    print(ensure_store(data))


if __name__ == "__main__":
    main()
