// A browser-style client of `cymetica-mcp serve`: fetch a JWT, then follow the live stream.
//
//   export CYMETICA_API_KEY=$(cymetica-mcp --db demo.db keys create --name js)
//   cymetica-mcp --db demo.db serve --push-interval 5 &
//   node examples/ws_client.mjs                       # Node 22+
//   node --experimental-websocket examples/ws_client.mjs   # Node 20/21
//
// Uses only fetch and WebSocket, the same globals a web page has. Stops after UPDATES updates
// (default 3; 0 runs forever). CYMETICA_URL points it elsewhere (default http://127.0.0.1:8000).

const BASE = (process.env.CYMETICA_URL ?? "http://127.0.0.1:8000").replace(/\/$/, "");
const KEY = process.env.CYMETICA_API_KEY;
const WANTED = Number(process.env.UPDATES ?? "3");

if (typeof WebSocket === "undefined") {
  console.error("no global WebSocket: use Node 22+, or run node --experimental-websocket on Node 20/21");
  process.exit(2);
}
if (!KEY) {
  console.error("set CYMETICA_API_KEY (cymetica-mcp keys create --name js)");
  process.exit(2);
}

const resp = await fetch(`${BASE}/api/v1/auth/token`, {
  method: "POST",
  headers: { Authorization: `Bearer ${KEY}` },
});
const issued = await resp.json();
if (!resp.ok) {
  console.error(`token refused: ${resp.status} ${issued.error.code}: ${issued.error.message}`);
  process.exit(1);
}

const ws = new WebSocket(`${BASE.replace(/^http/, "ws")}/ws/analytics?token=${issued.access_token}`);
let seen = 0;
let done = false;

ws.onmessage = (event) => {
  const msg = JSON.parse(event.data);
  switch (msg.type) {
    case "connected":
      console.log(`connected: session ${msg.session_id}, ${msg.filter}/${msg.period}`);
      ws.send(JSON.stringify({ type: "set_preferences", filter: "agents", period: "30d" }));
      break;
    case "preferences_ack":
      console.log(`preferences_ack: now ${msg.filter}/${msg.period}`);
      break;
    case "analytics_update": {
      const m = msg.data.metrics;
      console.log(`analytics_update: ${m.filter}, last ${m.period}, as of ${m.timestamp}`);
      for (const key of ["active_users", "trading_volume", "retention_rate", "avg_capital", "avg_roi"]) {
        const card = m[key];
        const change = card.change === null ? "n/a" : `${card.change > 0 ? "+" : ""}${card.change}%`;
        const suffix = card.suffix === "USDC" ? " USDC" : card.suffix;
        console.log(`  ${card.label}: ${card.value}${suffix} (${change})`);
      }
      console.log(`  volume series: ${msg.data.volume_over_time.length} points`);
      if (m.filter === "agents" && WANTED && ++seen >= WANTED && !done) {
        done = true;
        ws.close(1000, "done");
      }
      break;
    }
    case "heartbeat":
      ws.send(JSON.stringify({ type: "ping" }));
      break;
    case "error":
      console.log(`error ${msg.error.code}: ${msg.error.message}`);
      break;
  }
};
ws.onerror = () => console.error("WebSocket error");
ws.onclose = (event) => {
  // A close we started ends well whatever its code: Node 20's WebSocket may report 1006 when pushes
  // were still in flight while the closing handshake ran.
  console.log(done ? "closed after the updates asked for" : `closed by the server: ${event.code} ${event.reason}`);
  process.exitCode = done ? 0 : 1;
};
