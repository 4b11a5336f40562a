"""What the soak's clients saw: every dashboard by (filter, period, data version), errors by kind,
documented refusals (429 and its WebSocket forms) by door, and counts of what each door was asked.

Dashboards are kept once per distinct content: the canonical JSON (sorted keys, no spaces) of each
`data` object is stored under its (filter, period, data version), with the doors that delivered it.
After the run every such entry must hold exactly one content, equal to the engine's (`_verify.py`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

EXAMPLES: Final = 5
"""Messages kept per error kind (the count is always complete)."""
TEXTS_KEPT: Final = 512
"""Raw WebSocket update texts remembered, so the same push to 20 clients is parsed once."""

Sighting = tuple[str, str, int]
"""(filter, period, data version) of one dashboard a client received."""


def canonical(data: object) -> str:
    """`data` as JSON with sorted keys and no spaces: equal objects, equal strings."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest(text: str) -> str:
    """A short name for a canonical JSON text."""
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class Content:
    """One distinct dashboard received for a (filter, period, version), and which doors sent it."""

    text: str
    doors: Counter[str] = field(default_factory=Counter)


@dataclass
class Recorder:
    """Everything the clients report, on one event loop (no locks needed)."""

    dashboards: dict[Sighting, dict[str, Content]] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)
    """Dashboards received, by door."""
    requests: Counter[str] = field(default_factory=Counter)
    """What was asked or sent, by door and kind (e.g. `rest 200`, `ws set_preferences`)."""
    limited: Counter[str] = field(default_factory=Counter)
    """Documented refusals for going too fast (429, close 4429, `rate_limited`), by door."""
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    _texts: OrderedDict[str, tuple[Sighting, str]] = field(default_factory=OrderedDict)

    def error(self, kind: str, detail: str = "") -> None:
        """Count an error of `kind`, keeping the first few details."""
        self.errors[kind] += 1
        kept = self.examples.setdefault(kind, [])
        if detail and len(kept) < EXAMPLES:
            kept.append(detail[:500])

    def dashboard(self, door: str, filter: str, period: str, version: int, data: Any) -> None:
        """A dashboard `door` delivered as the one for (filter, period) at data `version`."""
        self._keep(door, (filter, period, version), canonical(data))

    def update_text(self, door: str, text: str) -> tuple[Sighting, dict[str, Any] | None]:
        """A raw WebSocket `analytics_update`: its sighting, recorded; the parsed message only when it
        had to be parsed (a text seen before is recognised without parsing)."""
        known = self._texts.get(text)
        if known is not None:
            self._texts.move_to_end(text)
            sighting, content = known
            self._keep(door, sighting, content)
            return sighting, None
        message: dict[str, Any] = json.loads(text)
        metrics = message["data"]["metrics"]
        sighting = (str(metrics["filter"]), str(metrics["period"]), int(message["data_version"]))
        content = canonical(message["data"])
        self._texts[text] = (sighting, content)
        if len(self._texts) > TEXTS_KEPT:
            self._texts.popitem(last=False)
        self._keep(door, sighting, content)
        return sighting, message

    def _keep(self, door: str, sighting: Sighting, content: str) -> None:
        self.received[door] += 1
        contents = self.dashboards.setdefault(sighting, {})
        name = digest(content)
        entry = contents.get(name)
        if entry is None:
            entry = contents[name] = Content(content)
        entry.doors[door] += 1

    def versions(self) -> list[int]:
        """Every data version some client received a dashboard of, ascending."""
        return sorted({version for _, _, version in self.dashboards})


@dataclass
class Sequence:
    """The data versions one WebSocket connection received, checked as they arrive."""

    last: int | None = None
    """The version of the latest update."""
    highest: int | None = None
    updates: int = 0
    backwards: list[tuple[int, int]] = field(default_factory=list)
    """(highest before, received) for each update whose version was below one received before it."""

    def see(self, version: int) -> None:
        """Take the version of the next `analytics_update`."""
        self.updates += 1
        if self.highest is not None and version < self.highest:
            self.backwards.append((self.highest, version))
        self.highest = version if self.highest is None else max(self.highest, version)
        self.last = version
