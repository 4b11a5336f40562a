"""Reading the dashboard a browser shows, and what it must show for a dashboard object.

`shown` reads the rendered view back (cards, context line, the chart tables, how many bars were drawn);
`expected` writes a dashboard object (REST body, MCP `data`) the way the view must: the same rules as
frontend/src/format.ts, restated independently here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from playwright.async_api import Frame, FrameLocator, Page

READ: Final = """
(root) => {
  const context = root.querySelector(".context");
  if (!context) return null;
  const text = (node, sel) => node.querySelector(sel)?.textContent ?? null;
  const cards = {};
  for (const li of root.querySelectorAll(".card")) {
    cards[li.dataset.metric] = {
      label: text(li, ".label"), number: text(li, ".number"), suffix: text(li, ".suffix") ?? "",
      change: text(li, ".change-text"), direction: li.querySelector(".change").classList[1],
    };
  }
  const rows = (chart) => [...root.querySelectorAll(`[data-chart="${chart}"] tbody tr`)]
    .map((tr) => [...tr.children].map((cell) => cell.textContent));
  return {
    filter: context.dataset.filter, period: context.dataset.period, timestamp: context.dataset.timestamp,
    version: context.dataset.version === undefined ? null : Number(context.dataset.version),
    cards, volume: rows("volume"), activity: rows("activity"), roi: rows("roi"),
    bars: root.querySelectorAll('[data-chart="volume"] rect.bar').length,
    lines: root.querySelectorAll('[data-chart="activity"] polyline').length,
    histogram: [...root.querySelectorAll(".histogram .count")].map((node) => node.textContent),
  };
}
"""
DECIMALS: Final = {"": 0, "USDC": 2, "%": 1}


async def shown(where: Page | Frame | FrameLocator) -> dict[str, Any] | None:
    """What the view in `where` shows now (None before its first dashboard)."""
    result: dict[str, Any] | None = await where.locator("#dashboard").evaluate(READ)
    return result


def _number(value: float, decimals: int) -> str:
    return f"{(value or 0.0):,.{decimals}f}"  # `or 0.0`: never "-0.0"


def _bucket(timestamp: str, period: str) -> str:
    at = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return f"{at:%b} {at.day}" if period == "30d" else f"{at:%b} {at.day} {at:%H:%M}"


def _change(change: float | None) -> tuple[str, str]:
    if change is None:
        return "n/a", "none"
    if change > 0:
        return f"+{_number(change, 1)}%", "up"
    if change < 0:
        return f"{_number(change, 1)}%", "down"
    return "0.0%", "flat"


def expected(dashboard: dict[str, Any], version: int | None) -> dict[str, Any]:
    """What the view must show for `dashboard` (from the data version `version`)."""
    metrics = dashboard["metrics"]
    period = metrics["period"]
    cards = {}
    for key in ("active_users", "trading_volume", "retention_rate", "avg_capital", "avg_roi"):
        card = metrics[key]
        change, direction = _change(card["change"])
        suffix = {"": "", "USDC": " USDC", "%": "%"}[card["suffix"]]
        cards[key] = {
            "label": card["label"],
            "number": _number(card["value"], DECIMALS[card["suffix"]]),
            "suffix": suffix,
            "change": change,
            "direction": direction,
        }
    volume = [
        [
            _bucket(p["timestamp"], period),
            _number(p["human_volume"], 2),
            _number(p["bot_volume"], 2),
            _number(p["total_volume"], 2),
            f"{p['trade_count']:,}",
        ]
        for p in dashboard["volume_over_time"]
    ]
    activity = [
        [
            _bucket(p["timestamp"], period),
            f"{p['human_users']:,}",
            f"{p['bot_users']:,}",
            f"{p['total_users']:,}",
        ]
        for p in dashboard["user_activity"]
    ]
    roi = [[b["range"], f"{b['count']:,}"] for b in dashboard["profitability_distribution"]]
    return {
        "filter": metrics["filter"],
        "period": period,
        "timestamp": metrics["timestamp"],
        "version": version,
        "cards": cards,
        "volume": volume,
        "activity": activity,
        "roi": roi,
        "bars": 2 * len(volume),
        "lines": 3,
        "histogram": [row[1] for row in roi],
    }
