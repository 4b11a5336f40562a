"""The import's fast path: a whole block of trade CSV lines validated and parsed at once with numpy.

`parse_trades` accepts a block only when every line in it is in the plain, canonical form that
almost every machine-written file uses: ASCII, no quotes, exactly five unquoted fields a line, times as
`YYYY-MM-DDTHH:MM:SSZ`, amounts as plain decimals with at most 12 digits before the point, every
user known. For anything else (a quote, a CRLF-less carriage return, a blank line, an offset, a bad
number, an unknown user, ...) it returns None and the caller runs the exact per-row path of
`_rows` / `_sink` over that block, so every message about a bad row still comes from that one place.

Accepting is therefore the only thing this module must get right: every row it accepts must be one
that the per-row path accepts, parsed to exactly the same values. tests/ingest/test_blocks.py checks this
with hypothesis against `_values.parse_ts` / `_values.parse_micro` on random valid and invalid blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from cymetica_mcp.store import AsciiIds

I64 = NDArray[np.int64]

FIELDS: Final = 5
MAX_ID: Final = 64  # trade_id and user_id: 1 to 64 characters (ASCII here, so bytes = characters)
MAX_AMOUNT: Final = 20  # '-' + 12 digits + '.' + 6 decimals
MAX_WHOLE: Final = 12  # digits before the point, leading zeros included (the per-row path allows more)
MAX_TS: Final = 2**33 - 1  # as ingest.MAX_TS; the lower bound is 0 (1970)

_COMMA: Final = ord(",")
_NEWLINE: Final = ord("\n")
_LINE_SEPARATORS: Final = np.array([_COMMA] * (FIELDS - 1) + [_NEWLINE], dtype=np.uint8)
# YYYY-MM-DDTHH:MM:SSZ: where the digits are, and what stands everywhere else
_TS_DIGITS: Final = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_TS_MARK_AT: Final = np.array([4, 7, 10, 13, 16, 19])
_TS_MARKS: Final = np.frombuffer(b"--T::Z", dtype=np.uint8)


class TradeBlock:
    """The rows of one block, in file order: trade ids as ASCII bytes (`ascii_ids`; as Python strings,
    `trade_ids`, made on first use), the rest as int64 columns."""

    __slots__ = ("_texts", "ascii_ids", "lines", "pnl", "ts", "user_ref", "volume")

    def __init__(
        self, lines: int, ascii_ids: AsciiIds, user_ref: I64, ts: I64, volume: I64, pnl: I64
    ) -> None:
        self.lines, self.ascii_ids = lines, ascii_ids
        self.user_ref, self.ts, self.volume, self.pnl = user_ref, ts, volume, pnl
        self._texts: list[str] | None = None

    @property
    def trade_ids(self) -> list[str]:
        """The trade ids as text (made once, on first use: a writer that copies bytes never asks)."""
        if self._texts is None:
            self._texts = self.ascii_ids.texts()
        return self._texts


class _Bytes:
    """A block's bytes, with a view that copies `width` bytes from each of many positions at once."""

    def __init__(self, block: bytes) -> None:
        padded = np.frombuffer(_PAD + block + _PAD, dtype=np.uint8)
        self.raw = padded[len(_PAD) : len(_PAD) + len(block)]
        self._windows = sliding_window_view(padded, _WINDOW)

    def take(self, starts: I64, width: int) -> NDArray[np.uint8]:
        """The `width` (at most 64) bytes from each of `starts` (-64 <= start <= the block's length)."""
        return self._windows[starts + len(_PAD), :width]


class Users:
    """The known users, for looking up a whole column of user_ids at once.

    Each ASCII user_id's bytes are hashed to 64 bits and placed in an open-addressing table; a column
    is hashed the same way and looked up, and every match is confirmed byte for byte, so a hash
    collision can only make a lookup fail (and the block go to the per-row path), never find the
    wrong user.
    """

    def __init__(self, ids: Mapping[str, int]) -> None:
        # a block holding NUL is never taken, so an id holding one is never looked up: left out, the
        # zero padding of the others is unambiguous
        known = [
            (key.encode(), ref)
            for key, ref in ids.items()
            if key.isascii() and 0 < len(key) <= MAX_ID and "\0" not in key
        ]
        self.width = max((len(key) for key, _ in known), default=0)
        self.lengths = np.array([len(key) for key, _ in known], dtype=np.int64)
        text = b"".join(key.ljust(self.width, b"\0") for key, _ in known)
        self.text = np.frombuffer(text, dtype=np.uint8).reshape(len(known), self.width)
        # ids of at most 8 bytes (the usual case) are their own 64-bit word, mixed by an odd factor:
        # one-to-one, so equal hashes are equal ids and the check byte for byte is not needed
        self.narrow = self.width <= _WORD
        self.hashes = _word_hash(self.text) if self.narrow else _hash(self.text, self.lengths)
        self.refs = np.array([ref for _, ref in known], dtype=np.int64)
        bits = max(4, (4 * len(known)).bit_length())  # at most a quarter full
        self.shift = np.uint64(64 - bits)
        self.mask = (1 << bits) - 1
        self.slots = np.full(1 << bits, -1, dtype=np.int64)
        self.probes = 1
        slots = self.slots
        for index, home in enumerate((self.hashes >> self.shift).tolist()):
            probe = 0
            while slots[(home + probe) & self.mask] >= 0:
                probe += 1
            slots[(home + probe) & self.mask] = index
            self.probes = max(self.probes, probe + 1)

    def find(self, data: _Bytes, starts: I64, lengths: I64) -> I64 | None:
        """The row ids of the user_ids at `starts`, or None if any is not known."""
        width = int(lengths.max())
        if not len(self.hashes) or width > self.width:
            return None
        text = data.take(starts, width) * (np.arange(width) < lengths[:, None])
        hashes = _word_hash(text) if self.narrow else _hash(text, lengths)
        home = (hashes >> self.shift).astype(np.int64)
        found = self.slots[home]
        for probe in range(1, self.probes):
            missed = np.flatnonzero((found < 0) | (self.hashes[found] != hashes))
            if not missed.size:
                break
            found[missed] = self.slots[(home[missed] + probe) & self.mask]
        if (found < 0).any() or not (self.hashes[found] == hashes).all():
            return None
        if not self.narrow and not (
            (self.lengths[found] == lengths).all() and (self.text[found, :width] == text).all()
        ):
            return None
        return self.refs[found]


def _word_hash(text: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """Each row's bytes (at most 8, zero padded) as one little-endian 64-bit word, times an odd
    factor: a one-to-one hash."""
    words = np.zeros((len(text), _WORD), dtype=np.uint8)
    words[:, : text.shape[1]] = text
    hashed: NDArray[np.uint64] = words.view("<u8").reshape(-1) * _HASH_FACTORS[0]
    return hashed


def _hash(text: NDArray[np.uint8], lengths: I64) -> NDArray[np.uint64]:
    """A 64-bit hash of each row's bytes (zero padded: padding adds nothing) and length."""
    mixed: NDArray[np.uint64] = text.astype(np.uint64) @ _HASH_FACTORS[: text.shape[1]]
    hashed: NDArray[np.uint64] = mixed ^ (lengths.astype(np.uint64) * _HASH_FACTORS[MAX_ID])
    return hashed


def parse_trades(block: bytes, columns: Sequence[int], users: Users) -> TradeBlock | None:
    """Parse whole lines of trade CSV (no header), or None if any line is not in the canonical form.

    `columns` gives where trade_id, user_id, ts, volume_usdc and pnl_usdc stand in a line (the header
    names exactly these five, in any order). The block holds whole lines; only the file's last block
    may lack the final newline.
    """
    if b"\r" in block:  # CRLF line ends are fine; any other carriage return is a line break to csv
        block = block.replace(b"\r\n", b"\n")
        if b"\r" in block:
            return None
    if not block or not block.isascii() or b'"' in block or b"\0" in block:
        return None
    if not block.endswith(b"\n"):
        block += b"\n"
    data = _Bytes(block)
    raw = data.raw
    separators = np.flatnonzero((raw == _COMMA) | (raw == _NEWLINE))
    if separators.size % FIELDS:
        return None
    lines = separators.size // FIELDS
    ends = separators.reshape(lines, FIELDS)
    if not (raw[ends] == _LINE_SEPARATORS).all():  # blank lines and wrong field counts end up here
        return None
    after = np.empty_like(separators)
    after[0] = 0
    after[1:] = separators[:-1] + 1
    starts = after.reshape(lines, FIELDS)
    lengths = ends - starts
    at_id, at_user, at_ts, at_volume, at_pnl = columns
    if lengths[:, at_id].min() < 1 or lengths[:, at_id].max() > MAX_ID or lengths[:, at_user].min() < 1:
        return None
    ts = _times(data, starts[:, at_ts], lengths[:, at_ts])
    if ts is None:
        return None
    # each '.' belongs to the field whose end is the first separator after it
    dot_at = np.flatnonzero(raw == ord("."))
    field_of_dot = np.searchsorted(separators, dot_at)
    dots = np.bincount(field_of_dot, minlength=separators.size).reshape(lines, FIELDS)
    points = ends.copy()
    points.reshape(-1)[field_of_dot] = dot_at  # with two dots or more the field is refused anyway
    amounts = [
        _amounts(data, starts[:, at], ends[:, at], points[:, at], dots[:, at]) for at in (at_volume, at_pnl)
    ]
    volume, pnl = amounts
    if volume is None or pnl is None or volume.min() <= 0:
        return None
    user_ref = users.find(data, starts[:, at_user], lengths[:, at_user])
    if user_ref is None:
        return None
    return TradeBlock(lines, _ids(data, starts[:, at_id], lengths[:, at_id]), user_ref, ts, volume, pnl)


def _ids(data: _Bytes, starts: I64, lengths: I64) -> AsciiIds:
    """The fields as a byte matrix, zero padded to the longest."""
    width = int(lengths.max())
    text = data.take(starts, width)
    if width != lengths.min():  # machine-made ids are usually all of one length
        text = text * (np.arange(width) < lengths[:, None])
    return AsciiIds(np.ascontiguousarray(text), lengths)


def _digits(text: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Each byte's digit value; anything but a digit wraps to 10 or more."""
    return text - np.uint8(ord("0"))


def _times(data: _Bytes, starts: I64, lengths: I64) -> I64 | None:
    """`YYYY-MM-DDTHH:MM:SSZ` -> UTC seconds, or None unless every field is one, valid and in range."""
    if lengths.min() != 20 or lengths.max() != 20:
        return None
    text = data.take(starts, 20)
    if not (text[:, _TS_MARK_AT] == _TS_MARKS).all():
        return None
    digits = _digits(text[:, _TS_DIGITS])
    if digits.max() > 9:
        return None
    pairs = digits[:, 0::2].astype(np.int64) * 10 + digits[:, 1::2]
    year = pairs[:, 0] * 100 + pairs[:, 1]
    month, day, hour, minute, second = (pairs[:, i] for i in range(2, 7))
    if (
        year.min() < _FIRST_YEAR
        or year.max() > _LAST_YEAR
        or month.min() < 1
        or month.max() > 12
        or day.min() < 1
        or hour.max() > 23
        or minute.max() > 59
        or second.max() > 59
    ):
        return None
    month_index = (year - _FIRST_YEAR) * 12 + month - 1
    if (day > _DAYS_IN_MONTH[month_index]).any():
        return None
    seconds: I64 = (_DAYS_BEFORE_MONTH[month_index] + day - 1) * 86_400 + hour * 3_600 + minute * 60 + second
    if seconds.max() > MAX_TS:
        return None
    return seconds


def _amounts(data: _Bytes, starts: I64, ends: I64, points: I64, dots: I64) -> I64 | None:
    """Plain decimals -> integer micro-USDC, or None unless every field is one the fast path takes.

    Taken: an optional '-', 1 to 12 digits, then optionally '.' and 1 to 6 digits. The per-row path
    takes a few more (more leading zeros) and refuses the rest; both go to it. `points` is where
    each field's '.' is (its end if it has none) and `dots` how many it has.
    """
    if dots.max() > 1:
        return None
    negative = data.raw[starts] == ord("-")
    whole = points - starts - negative
    decimals = np.where(dots == 1, ends - points - 1, 0)
    if (
        whole.min() < 1
        or whole.max() > MAX_WHOLE
        or ((dots == 1) & (decimals < 1)).any()
        or decimals.max() > 6
    ):
        return None
    # 12 places before the point (digits right-aligned), the point, 6 after it (left-aligned), taken
    # at once; which places a field uses depends only on its digits before and after the point
    digits = _digits(data.take(points - MAX_WHOLE, _AMOUNT_WIDTH))
    used = _USED_PLACES[whole, decimals]
    if (used & (digits > 9)).any():
        return None
    value = _whole_micro(digits * used)
    return np.where(negative, -value, value)


def _whole_micro(digits: NDArray[np.uint8]) -> I64:
    """Micro-USDC from each row's 12 digits before the point, the point (0) and 6 after it, 0 where
    unused: digits joined in pairs as bytes, then in fours as 16-bit words, so that only three
    columns and three widen to int64 (all exact: at most 10^18 - 1)."""
    whole, fraction = digits[:, :MAX_WHOLE], digits[:, MAX_WHOLE + 1 :]
    pairs = whole[:, 0::2] * np.uint8(10) + whole[:, 1::2]  # 6 columns of 0..99
    fours = pairs[:, 0::2].astype(np.uint16) * np.uint16(100) + pairs[:, 1::2]  # 3 of 0..9999
    micro: I64 = fours.astype(np.int64) @ _FOURS  # the whole USDC, in micro
    micro += (fraction[:, 0::2] * np.uint8(10) + fraction[:, 1::2]).astype(np.int64) @ _FRACTION_PAIRS
    return micro


def _month_tables(first: int, last: int) -> tuple[I64, I64]:
    """Days from 1970-01-01 to the first of each month of the years first..last, and their lengths."""
    starts = np.arange(f"{first}-01", f"{last + 1}-02", dtype="datetime64[M]").astype("datetime64[D]")
    days = starts.astype(np.int64)
    return days[:-1], np.diff(days)


_WORD: Final = 8
_PAD: Final = bytes(64)
_WINDOW: Final = 64
_FIRST_YEAR: Final = 1970
_LAST_YEAR: Final = 2242
_DAYS_BEFORE_MONTH, _DAYS_IN_MONTH = _month_tables(_FIRST_YEAR, _LAST_YEAR)
_AMOUNT_WIDTH: Final = MAX_WHOLE + 7  # 12 digits, the point, 6 decimals


def _used_places() -> NDArray[np.bool_]:
    """[whole digits, decimals] -> which of the `_AMOUNT_WIDTH` places hold the field's digits."""
    place = np.arange(_AMOUNT_WIDTH)
    whole = np.arange(MAX_WHOLE + 1)[:, None, None]
    decimals = np.arange(7)[None, :, None]
    used: NDArray[np.bool_] = (
        (place >= MAX_WHOLE - whole) & (place <= MAX_WHOLE + decimals) & (place != MAX_WHOLE)
    )
    return used


_USED_PLACES: Final = _used_places()
_FOURS: Final = np.array([10**14, 10**10, 10**6], dtype=np.int64)
_FRACTION_PAIRS: Final = np.array([10**4, 10**2, 1], dtype=np.int64)
_HASH_FACTORS: Final = np.random.default_rng(20260320).integers(1, 2**63, MAX_ID + 1, dtype=np.uint64) | 1
