"""What hosts can show: the MCP App view of the tool and the icons.

- MCP Apps (extension `io.modelcontextprotocol/ui`, `mcp.server.apps`): the tool's `_meta.ui.resourceUri`
  names `ui://cymetica/dashboard.html`, one self-contained HTML document (served as
  `text/html;profile=mcp-app`) that renders the tool's result and calls the tool again through the host
  to switch filter or period. The server advertises the extension; hosts without it never read the view
  and see the tool's results exactly as before (the results are the same bytes either way).
- The server's and the tool's icon: the SVG as a `data:` URI, so a host shows it without a fetch.
(`completion/complete` of the choices is `_completion.py`.)
"""

from __future__ import annotations

from typing import Any, Final

from mcp.server.apps import Apps
from mcp.types import Icon

from cymetica_mcp import assets

VIEW_URI: Final = "ui://cymetica/dashboard.html"
VIEW_DESCRIPTION: Final = (
    "The interactive dashboard view of et_analytics_dashboard (MCP Apps): five headline figures, volume "
    "and active-user charts, the ROI distribution, and switches that call the tool again for another "
    "filter or period. Self-contained: it loads nothing from anywhere."
)


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
