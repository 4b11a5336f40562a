"""The import's fast path (whole blocks parsed with numpy) against the exact per-row reading it stands in for.

The oracle is the whole-file reader that every import used before the fast path existed, and that
every file whose header is not plain still goes through: `_plain_csv_header` patched to say "not
plain" forces it. Random files mix canonical rows (which the fast path takes) with every form that
it must leave to the per-row reading (offsets, fractions of seconds, quotes, quoted line breaks,
CRLF and lone CR, blank lines, bad numbers, unknown users, repeated trade_ids, bytes that are not
UTF-8...), read in tiny blocks so that one file runs through many fast and slow blocks. Both imports
must end the same: the same report or the same refusal (every listed error, the total), the same
rows, and chunks that agree with the rows.

SQLite only: what is under test is the reading (the store is the sink both paths write to) and the
packed chunks, which only the SQLite store keeps; the import rules themselves run on both backends in
test_ingest.py.
"""

from __future__ import annotations

import csv
import sqlite3
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cymetica_mcp.ingest import ImportRefused, _fastpath, _importer, _sink, _values, import_files
from cymetica_mcp.ingest import _blocks as blocks
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.store import _chunks as chunks

PROFILE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
USERS = "user_id,kind,capital_usdc,created_at\n"
KNOWN = ["alice", "bob", "u-2", "zoë"]  # zoë: a user the fast path can never match (not ASCII)
FIELDS = ("trade_id", "user_id", "ts", "volume_usdc", "pnl_usdc")
LAST_INSTANT = datetime.fromtimestamp(_values.MAX_TS, UTC)


@pytest.fixture(autouse=True)
def fast_path_for_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files here are small: take the fast path whatever their size (it normally starts at 256 KiB)."""
    monkeypatch.setattr(_importer, "FAST_PATH_BYTES", 0)


# -- fields --------------------------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(1970, 1, 1), max_value=LAST_INSTANT.replace(tzinfo=None))
canonical_ts = instants.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
other_ts = st.one_of(
    st.builds(
        lambda d, tail: d.strftime("%Y-%m-%dT%H:%M:%S") + tail,
        instants,
        st.sampled_from(["+05:30", "-08:00", "+00:00", ".999Z", ".5+01:30", "", "z", " Z"]),
    ),
    st.sampled_from(
        [
            "2024-02-29T00:00:00Z",  # a leap day
            "2000-02-29T23:59:59Z",
            "1900-02-29T00:00:00Z",  # not one
            "2023-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-03-20T24:00:00Z",
            "2026-03-20T23:60:00Z",
            "2026-03-20T23:59:60Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            LAST_INSTANT.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "2242-03-16T12:56:32Z",  # one second too late
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "2026-03-20 12:00:00Z",
            "2026-03-20t12:00:00Z",
            "20260320T120000Z",
            "2026-03-20T12:00Z",
            "２026-03-20T12:00:00Z",
            "yesterday",
            "",
        ]
    ),
)
canonical_amount = st.builds(
    lambda sign, whole, decimals, digits: sign + str(whole) + ("." + digits[:decimals] if decimals else ""),
    st.sampled_from(["", "", "", "-"]),
    st.one_of(st.integers(0, 999), st.integers(0, 10**12 - 1)),
    st.integers(0, 6),
    st.text("0123456789", min_size=6, max_size=6),
)
positive_amount = canonical_amount.filter(lambda text: _values.parse_micro(text, "v") > 0)
other_amount = st.one_of(
    st.builds(
        lambda sign, whole, point, fraction: sign + whole + point + fraction,
        st.sampled_from(["", "-", "+", "--"]),
        st.text("0123456789", max_size=15),
        st.sampled_from(["", ".", ".."]),
        st.text("0123456789", max_size=8),
    ),
    st.sampled_from(
        [
            "0",
            "-0",  # negative zero
            "-0.0",
            "-0.5",
            "0.000001",
            "999999999999.999999",  # 12 digits before the point, 6 after
            "1000000000000",  # 13: out of range
            "0001000000000000",  # leading zeros do not count
            "0000000000000000000001.5",
            "1e3",
            "1,000",
            " 1",
            "1 ",
            "0x1F",
            "١٢",
            "²",
            "NaN",
            "",
        ]
    ),
)
trade_ids = st.one_of(
    st.sampled_from(["t1", "t2", "t3", "t4", "t5"]),  # repeats, within and across blocks and imports
    st.text("ab1-. _'", max_size=4),
    st.sampled_from(["x" * 64, "y" * 65, "é1", 'q"uote', "com,ma", "line\nbreak", "cr\rhere", "nul\0"]),
)
user_ids = st.sampled_from([*KNOWN, *KNOWN, "ghost", "", "ALICE", "alice ", "x" * 65])


@st.composite
def trade_lines(draw: st.DrawFn, order: tuple[int, ...]) -> str:
    """One line of a trades file (its ending included), fields laid out as `order` says.

    Mostly canonical; often canonical but for one field (the cases the fast path must not take);
    sometimes anything at all, a blank line, a field too few or too many, or a quote never closed.
    """
    kind = draw(
        st.sampled_from(["canonical"] * 5 + ["one off"] * 4 + ["mixed", "blank", "short", "long", "open"])
    )
    ending = draw(st.sampled_from(["\n"] * 8 + ["\r\n", "\r"]))
    if kind == "blank":
        return ending
    if kind == "open":  # a quoted field that runs on over the following lines
        return 'x,"never closed' + ending
    values = [
        draw(st.sampled_from(["t1", "t2", "t3"]))
        if draw(st.booleans())
        else draw(st.from_regex(r"\At[0-9]{1,4}\Z")),
        draw(st.sampled_from(KNOWN[:3])),
        draw(canonical_ts),
        draw(canonical_amount.filter(lambda a: a.lstrip("-").strip("0.") != "")),
        draw(canonical_amount),
    ]
    quoted = [False] * 5
    odd = [trade_ids, user_ids, other_ts, other_amount, other_amount]
    if kind == "one off":
        at = draw(st.integers(0, 4))
        values[at] = draw(odd[at])
        quoted[at] = draw(st.booleans()) and draw(st.booleans())
    elif kind == "mixed":
        values = [draw(st.one_of(odd[at], st.just(values[at]))) for at in range(5)]
        quoted = [draw(st.booleans()) and draw(st.booleans()) for _ in values]
    cells = [_cell(values[at], quoted[at]) for at in order]
    if kind == "short":
        cells.pop()
    if kind == "long":
        cells.append("extra")
    return ",".join(cells) + ending


def _cell(value: str, quote: bool) -> str:
    if quote or any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def trade_files(draw: st.DrawFn) -> bytes:
    order = tuple(draw(st.permutations(range(5))))
    header = ",".join(FIELDS[at] for at in order)
    text = header + draw(st.sampled_from(["\n", "\n", "\r\n"]))
    text += "".join(draw(st.lists(trade_lines(order), max_size=40)))
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # no newline after the last line
    if draw(st.integers(0, 9)) == 0:
        text = "\ufeff" + text
    data = text.encode()
    corrupt = draw(st.none() | st.none() | st.none() | st.integers(0, len(data)))
    if corrupt is not None:
        data = data[:corrupt] + b"\xff" + data[corrupt:]
    return data


# -- the two imports -----------------------------------------------------------------------------------


def _import(folder: Path, trades: bytes, bad_user: bool, fast: bool, block: int, batch: int) -> Any:
    """Seed a new store, import `trades` (and users), and return everything that came out of it."""
    store = SQLiteStore(folder / ("fast.db" if fast else "rows.db"))
    (folder / "u0.csv").write_text(
        USERS + "".join(f"{u},human,100,2026-01-01T00:00:00Z\n" for u in KNOWN), encoding="utf-8"
    )
    (folder / "t0.csv").write_text(
        ",".join(FIELDS) + "\nt1,alice,2026-03-20T10:00:00Z,100,5\nt4,bob,2026-03-20T10:00:00Z,1,1\n"
    )
    import_files(store, folder / "u0.csv", folder / "t0.csv")
    users = folder / "u1.csv"
    users.write_text(
        USERS + ("bob,robot,1,2026-01-01T00:00:00Z\n" if bad_user else "carol,agent,0,2026-01-01T00:00:00Z\n")
    )
    path = folder / "t1.csv"
    path.write_bytes(trades)
    plain = _fastpath.plain_csv_header if fast else (lambda _path: None)
    with (
        mock.patch.object(_importer, "plain_csv_header", plain),
        mock.patch.object(_fastpath, "BLOCK_BYTES", block),
        mock.patch.object(_sink, "BATCH", batch),
    ):
        try:
            report = import_files(store, users, path)
            outcome: Any = (
                "imported",
                report.users_inserted,
                report.users_updated,
                report.trades_inserted,
                report.trades_present,
                report.rows,
                report.data_version,
            )
        except ImportRefused as refused:
            outcome = ("refused", refused.total, [(e.file, e.line, e.reason) for e in refused.errors])
    with store.read() as conn:
        tables = [
            conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("users", "trades", "meta")
        ]
        newest = conn.execute("SELECT coalesce(max(id), 0) FROM trades").fetchone()[0]
        rows = conn.execute("SELECT user_ref, ts, volume_micro, pnl_micro FROM trades ORDER BY id").fetchall()
        columns = list(chunks.read_columns(conn, 0, newest))
        packed = np.concatenate([np.stack(c, axis=1) for c in columns]) if columns else np.zeros((0, 4))
        assert packed.tolist() == [list(r) for r in rows]  # the chunks say what the rows say
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    return outcome, tables


@given(
    trades=trade_files(),
    bad_user=st.booleans(),
    block=st.sampled_from([1, 16, 64, 200, 1 << 20]),
    batch=st.sampled_from([2, 10_000]),
)
@settings(PROFILE, max_examples=200)
@example(
    trades=b"trade_id,user_id,ts,volume_usdc,pnl_usdc\nt9,alice,2026-03-20T10:00:00Z,1,0",
    bad_user=False,
    block=16,
    batch=2,
)
def test_the_fast_path_ends_exactly_as_the_per_row_reading(
    trades: bytes, bad_user: bool, block: int, batch: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        fast = _import(Path(folder), trades, bad_user, True, block, batch)
        rows = _import(Path(folder), trades, bad_user, False, block, batch)
    assert fast == rows


# -- the block parser alone ----------------------------------------------------------------------------


def _per_row(
    line: str, columns: tuple[int, ...], ids: dict[str, int]
) -> tuple[str, int, int, int, int] | None:
    """What the per-row path makes of one line (fields at `columns`), or None if it refuses it."""
    cells = next(csv.reader([line]), [])
    if len(cells) != 5:
        return None
    row = tuple(cells[at] for at in columns)
    try:
        trade_id, user_id, ts, volume, pnl = _values.parse_trade(row)
    except ValueError:
        return None
    return None if user_id not in ids else (trade_id, ids[user_id], ts, volume, pnl)


@given(
    order=st.permutations(range(5)).map(tuple),
    count=st.integers(1, 30),
    data=st.data(),
)
@settings(PROFILE, max_examples=200)
def test_a_block_is_taken_only_if_every_row_is_valid_and_then_parsed_alike(
    order: tuple[int, ...], count: int, data: st.DataObject
) -> None:
    ids = {user: ref for ref, user in enumerate(KNOWN, start=7)}
    columns = tuple(order.index(field) for field in range(5))  # where each field stands
    for block in (
        "".join(data.draw(trade_lines(order)) for _ in range(count)),
        "".join(data.draw(trade_lines(order)) for _ in range(3)),
    ):
        parsed = blocks.parse_trades(block.encode(), columns, blocks.Users(ids))
        if parsed is None:
            continue
        expected = [_per_row(line, columns, ids) for line in block.splitlines(keepends=True)]
        assert None not in expected
        got = list(
            zip(
                parsed.trade_ids,
                *(c.tolist() for c in (parsed.user_ref, parsed.ts, parsed.volume, parsed.pnl)),
                strict=True,
            )
        )
        assert got == expected


@given(
    order=st.permutations(range(5)).map(tuple),
    rows=st.lists(
        st.tuples(
            st.from_regex(r"\At[0-9a-z]{1,6}\Z"),
            st.sampled_from(KNOWN[:3]),
            canonical_ts,
            positive_amount,
            canonical_amount,
        ),
        min_size=1,
        max_size=30,
    ),
    crlf=st.booleans(),
    last_newline=st.booleans(),
)
@settings(PROFILE, max_examples=100)
def test_canonical_rows_take_the_fast_path_with_the_values_of_the_per_row_path(
    order: tuple[int, ...], rows: list[tuple[str, ...]], crlf: bool, last_newline: bool
) -> None:
    ids = {user: ref for ref, user in enumerate(KNOWN, start=1)}
    ending = "\r\n" if crlf else "\n"
    block = ending.join(",".join(row[at] for at in order) for row in rows) + (ending if last_newline else "")
    columns = tuple(order.index(field) for field in range(5))
    parsed = blocks.parse_trades(block.encode(), columns, blocks.Users(ids))
    assert parsed is not None
    assert parsed.lines == len(rows)
    for at, (trade_id, user, ts, volume, pnl) in enumerate(rows):
        assert parsed.trade_ids[at] == trade_id
        assert parsed.user_ref[at] == ids[user]
        assert parsed.ts[at] == _values.parse_ts(ts, "ts")
        assert parsed.volume[at] == _values.parse_micro(volume, "v")
        assert parsed.pnl[at] == _values.parse_micro(pnl, "p")


def test_edge_amounts_and_times_parse_exactly() -> None:
    block = (
        "t0,u,1970-01-01T00:00:00Z,1,-0\n"  # negative zero
        "t1,u,2024-02-29T23:59:59Z,0.000001,-0.5\n"
        "t2,u,2242-03-16T12:56:31Z,999999999999.999999,-999999999999.999999\n"
        "t3,u,2000-02-29T00:00:00Z,000000000001,-000000000000.000001\n"
    )
    parsed = blocks.parse_trades(block.encode(), (0, 1, 2, 3, 4), blocks.Users({"u": 1}))
    assert parsed is not None
    assert parsed.volume.tolist() == [1_000_000, 1, 999_999_999_999_999_999, 1_000_000]
    assert parsed.pnl.tolist() == [0, -500_000, -999_999_999_999_999_999, -1]
    assert parsed.ts.tolist() == [0, 1_709_251_199, _values.MAX_TS, 951_782_400]


@pytest.mark.parametrize(
    "line",
    [
        "t,u,2026-03-20T10:00:00+00:00,1,0",  # right, but not canonical: the per-row path reads it
        "t,u,2026-03-20T10:00:00.5Z,1,0",
        't,u,2026-03-20T10:00:00Z,"1",0',
        "t,u,2026-03-20T10:00:00Z,0001000000000000,0",
        "t,u,2026-03-20T10:00:00Z,0,0",  # refused: volume must be > 0
        "t,u,2026-03-20T10:00:00Z,1,-",
        "t,u,2026-03-20T10:00:00Z,1,1.",
        "t,u,2026-03-20T10:00:00Z,1,.5",
        "t,u,2026-03-20T10:00:00Z,1,1.2.3",
        "t,u,2026-03-20T10:00:00Z,1,1.1234567",
        "t,u,2026-03-20T10:00:00Z,+1,0",
        "t,u,2026-03-20T10:00:00Z,1,--1",
        "t,u,2026-03-20T10:00:00Z,1,1-",
        "t,u,2026-03-20T10:00:00Z,1, 1",
        "t,u,2026-03-20T10:00:00Z,1e3,0",
        "t,u,2026-03-20T10:00:00Z,1000000000000,0",
        "t,u,2026-03-20T10:00:00Z,-1,0",
        "t,u,2023-02-29T10:00:00Z,1,0",
        "t,u,1900-02-29T10:00:00Z,1,0",
        "t,u,2026-04-31T10:00:00Z,1,0",
        "t,u,2026-03-00T10:00:00Z,1,0",
        "t,u,2026-03-32T10:00:00Z,1,0",
        "t,u,2026-00-20T10:00:00Z,1,0",
        "t,u,2026-13-20T10:00:00Z,1,0",
        "t,u,2026-03-20T24:00:00Z,1,0",
        "t,u,2026-03-20T23:60:00Z,1,0",
        "t,u,2026-03-20T23:59:60Z,1,0",
        "t,u,1969-12-31T23:59:59Z,1,0",
        "t,u,2242-03-16T12:56:32Z,1,0",
        "t,u,2026-03-20t10:00:00Z,1,0",
        "t,u,2026-03-20T10:00:00z,1,0",
        "t,u,2026-03-20 10:00:00Z,1,0",
        "t,u,2026/03/20T10:00:00Z,1,0",
        "t,u,2026-03-20T10:00:0aZ,1,0",
        "t,u,2026-03-20T10:00:00ZZ,1,0",
        "t,u,2026-3-20T10:00:00Z,1,0",
        "t" * 65 + ",u,2026-03-20T10:00:00Z,1,0",
        "t,u,,1,0",
        "t,ghost,2026-03-20T10:00:00Z,1,0",
        ",u,2026-03-20T10:00:00Z,1,0",
        "t,u,2026-03-20T10:00:00Z,1",
        "t,u\r,2026-03-20T10:00:00Z,1,0",
        "",
    ],
)
def test_anything_not_canonical_goes_to_the_per_row_path(line: str) -> None:
    block = "ok,u,2026-03-20T10:00:00Z,1,0\n" + line + "\n"
    assert blocks.parse_trades(block.encode(), (0, 1, 2, 3, 4), blocks.Users({"u": 1})) is None


def test_users_are_found_exactly_and_a_hash_collision_only_sends_a_block_to_the_per_row_path() -> None:
    line = "t,{},2026-03-20T10:00:00Z,1,0\n"
    users = blocks.Users({"a": 1, "bb": 2, "zoë": 3})
    parsed = blocks.parse_trades((line.format("bb") + line.format("a")).encode(), (0, 1, 2, 3, 4), users)
    assert parsed is not None and parsed.user_ref.tolist() == [2, 1]
    for unknown in ("b", "bbb", "A", "zo"):
        assert blocks.parse_trades(line.format(unknown).encode(), (0, 1, 2, 3, 4), users) is None
    assert blocks.parse_trades(line.format("a").encode(), (0, 1, 2, 3, 4), blocks.Users({})) is None
    with mock.patch.object(blocks, "_hash", lambda text, lengths: np.zeros(len(lengths), dtype=np.uint64)):
        wide = {"a-longer-id": 1, "bb-longer-id": 2}  # past 8 bytes: hashed, then checked byte for byte
        colliding = blocks.Users(wide)  # every id hashes alike
        for user, ref in (("a-longer-id", 1), ("bb-longer-id", 2), ("c-longer-id", None), ("a", None)):
            parsed = blocks.parse_trades(line.format(user).encode(), (0, 1, 2, 3, 4), colliding)
            assert parsed is None or parsed.user_ref.tolist() == [ref]  # never another user
    # ids of at most 8 bytes are their own key; one holding NUL is left out (never "a" padded)
    narrow = blocks.Users({"a\0": 1, "a": 2, "abcdefgh": 3, "abcdefg": 4})
    both = (line.format("a") + line.format("abcdefgh") + line.format("abcdefg")).encode()
    parsed = blocks.parse_trades(both, (0, 1, 2, 3, 4), narrow)
    assert parsed is not None and parsed.user_ref.tolist() == [2, 3, 4]
    assert blocks.parse_trades(line.format("abcdef").encode(), (0, 1, 2, 3, 4), narrow) is None


# -- whole files ---------------------------------------------------------------------------------------

GOOD = "".join(f"g{i},alice,2026-03-20T{i % 24:02}:00:00Z,{i + 1}.5,-{i}\n" for i in range(3000))


@pytest.mark.parametrize(
    "tail",
    [
        b"bad,alice,2026-03-20T00:00:00Z,1,\xff\n",
        b"huge,alice,2026-03-20T00:00:00Z," + b"9" * 200_000 + b",0\n",
        b'spans,alice,2026-03-20T00:00:00Z,1,"0\n' + GOOD[:20_000].encode() + b'"\n',
        b"late,ghost,2026-03-20T00:00:00Z,1,0\n",
    ],
    ids=["not-utf8", "huge-field", "quoted-line-breaks", "unknown-user"],
)
def test_a_late_problem_after_fast_blocks_is_reported_as_the_per_row_reading_reports_it(tail: bytes) -> None:
    data = (",".join(FIELDS) + "\n" + GOOD).encode() + tail + GOOD.replace("g", "h").encode()
    with tempfile.TemporaryDirectory() as folder:
        fast = _import(Path(folder), data, False, True, 4096, 10_000)
        rows = _import(Path(folder), data, False, False, 4096, 10_000)
    assert fast == rows
    assert fast[0][0] == "refused"


def test_a_failing_write_stops_the_parsing_thread(store: SQLiteStore, tmp_path: Path) -> None:
    (tmp_path / "u.csv").write_text(USERS + "alice,human,1,2026-01-01T00:00:00Z\n")
    import_files(store, tmp_path / "u.csv")
    path = tmp_path / "t.csv"
    path.write_text(",".join(FIELDS) + "\n" + GOOD * 4)
    threads = threading.active_count()

    def fail(self: object, prepared: object) -> None:
        raise RuntimeError("disk full")

    with (
        mock.patch.object(_fastpath, "BLOCK_BYTES", 1024),
        mock.patch.object(_sink.TradeSink, "block", fail),
        pytest.raises(RuntimeError, match="disk full"),
    ):
        import_files(store, trades=path)
    assert threading.active_count() == threads
    with store.read() as conn:
        assert conn.execute("SELECT count(*) FROM trades").fetchone()[0] == 0


def test_a_trade_naming_no_user_is_refused_by_the_foreign_key_check(
    store: SQLiteStore, tmp_path: Path
) -> None:
    # SQLite's row-by-row check is off during imports; the import checks the users its trades name
    (tmp_path / "u.csv").write_text(USERS + "alice,human,1,2026-01-01T00:00:00Z\n")
    import_files(store, tmp_path / "u.csv")
    path = tmp_path / "t.csv"
    path.write_text(",".join(FIELDS) + "\n" + GOOD)
    with (
        mock.patch.object(
            blocks.Users, "find", lambda self, data, starts, lengths: np.full(len(starts), 999)
        ),
        pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"),
    ):
        import_files(store, trades=path)
    with store.read() as conn:
        assert conn.execute("SELECT count(*) FROM trades").fetchone()[0] == 0
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # other connections keep them on


def test_a_small_file_is_read_row_by_row_with_the_same_result(
    store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "u.csv").write_text(USERS + "alice,human,1,2026-01-01T00:00:00Z\n")
    import_files(store, tmp_path / "u.csv")
    path = tmp_path / "t.csv"
    path.write_text(",".join(FIELDS) + "\n" + GOOD * 3)
    monkeypatch.setattr(_importer, "FAST_PATH_BYTES", path.stat().st_size + 1)
    with mock.patch.object(_sink.TradeSink, "block", side_effect=AssertionError("the fast path ran")):
        report = import_files(store, trades=path)
    assert (report.trades_inserted, report.trades_present) == (3000, 6000)
