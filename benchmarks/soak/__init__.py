"""`make soak`: every door under load at once against a real `cymetica-mcp serve`, then the proof.

    python -m benchmarks.soak [--seconds 120] [--json soak.json] [--rest-clients 50] [--ws-clients 200] ...

The server is a subprocess on 127.0.0.1 (any free port) over a copy of a demo store, its clock fixed
(CYMETICA_NOW) so that every figure can be recomputed. For `--seconds`, all at once: REST pollers
(each on one filter/period for a few polls, revalidating with its ETag, then another), WebSocket clients
of /ws/analytics (switching preferences now and then, pinging, reconnecting after a random lifetime),
MCP client sessions over Streamable HTTP calling `et_analytics_dashboard`, and imports of simulated
users and trades to the ingest endpoint every few seconds (every tenth a retry that changes nothing).
Half the clients use a JWT from the token endpoint, the others their API key. Then the load stops, each
WebSocket client waits to be shown the final data version, and every client closes.

Checks (the run fails on any): no error other than documented 429s (counted); every dashboard received
on any door equals a fresh engine's at its data version (the imports replayed in order into a copy of
the starting store); no WebSocket connection's data versions go backwards; every WebSocket client ends
on the final version; REST answers it too; the server's RSS grows less than a bound; its descriptors
come back to their start; its log has no error; it stops cleanly on SIGTERM. The summary is printed
and, with `--json`, written as JSON.
"""

from __future__ import annotations

from benchmarks.soak._load import Imported
from benchmarks.soak._record import Recorder, Sequence
from benchmarks.soak._run import NOW, SoakConfig, soak
from benchmarks.soak._verify import Verification, verify

__all__ = ["NOW", "Imported", "Recorder", "Sequence", "SoakConfig", "Verification", "soak", "verify"]
