"""What hosts can show: the MCP App view of the tool, icons, and completions of the choices.

- MCP Apps (extension `io.modelcontextprotocol/ui`, `mcp.server.apps`): the tool's `_meta.ui.resourceUri`
  names `ui://cymetica/dashboard.html`, one self-contained HTML document (served as
  `text/html;profile=mcp-app`) that renders the tool's result and calls the tool again through the host
  to switch filter or period. The server advertises the extension; hosts without it never read the view
  and see the tool's results exactly as before (the results are the same bytes either way).
- The server's and the tool's icon: the SVG as a `data:` URI, so a host shows it without a fetch.
- `completion/complete` for the dashboard template's and the briefing prompt's `filter` and `period`.
"""

from __future__ import annotations

from typing import Any, Final

from mcp.server.apps import Apps
from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    Icon,
    PromptReference,
    ResourceTemplateReference,
)

from cymetica_mcp import assets
from cymetica_mcp.models import Filter, Period

VIEW_URI: Final = "ui://cymetica/dashboard.html"
VIEW_DESCRIPTION: Final = (
    "The interactive dashboard view of et_analytics_dashboard (MCP Apps): five headline figures, volume "
    "and active-user charts, the ROI distribution, and switches that call the tool again for another "
    "filter or period. Self-contained: it loads nothing from anywhere."
)
CHOICES: Final = {"filter": [f.value for f in Filter], "period": [p.value for p in Period]}


def icons() -> list[Icon]:
    """The icon of the server and the tool."""
    return [Icon(src=assets.icon_data_uri(), mime_type="image/svg+xml", sizes=["any"])]


def view_extension() -> Apps:
    """The MCP Apps extension carrying the view (the tool itself is registered by the server, whose
    tool validates its raw arguments; `tool_meta` stamps the same `_meta.ui` that `Apps.tool` would)."""
    apps = Apps()
    apps.add_html_resource(
        VIEW_URI,
        assets.read_text(assets.VIEW),
        name="dashboard-view",
        title="Analytics dashboard (interactive view)",
        description=VIEW_DESCRIPTION,
        prefers_border=False,
    )
    return apps


def tool_meta() -> dict[str, Any]:
    """The tool's `_meta`: where its view is (`_meta.ui.resourceUri`, the MCP Apps spec's key)."""
    return {"ui": {"resourceUri": VIEW_URI}}


def complete_choice(
    ref: PromptReference | ResourceTemplateReference,
    argument: CompletionArgument,
    context: CompletionContext | None,
    *,
    template: str,
    prompt: str,
) -> Completion | None:
    """The accepted values of `filter` or `period` that start with what was typed (case-insensitive),
    for the dashboard resource template and the briefing prompt; None for anything else."""
    if isinstance(ref, ResourceTemplateReference):
        if ref.uri != template:
            return None
    elif ref.name != prompt:
        return None
    values = CHOICES.get(argument.name)
    if values is None:
        return None
    typed = argument.value.strip().lower()
    matching = [value for value in values if value.startswith(typed)]
    return Completion(values=matching, total=len(matching), has_more=False)
