const token = "YOUR_JWT_TOKEN";
const ws = new WebSocket(`wss://cymetica.com/ws/analytics?token=${token}`);
ws.onopen = () => {
  console.log("Connected to analytics stream");
  // Set preferences
  ws.send(JSON.stringify({
    type: "set_preferences",
    filter: "all",
    period: "24h"
  }));
};
ws.onmessage = (event) => {
  const msg = JSON.parse(event.data);
  switch (msg.type) {
    case "connected":
      console.log("Session established");
      break;
    case "analytics_update":
      console.log("Metrics:", msg.data.metrics);
      console.log("Volume:", msg.data.volume_over_time.length, "points");
      break;
    case "heartbeat":
      // Connection alive
      break;
    case "preferences_ack":
      console.log("Preferences updated");
      break;
  }
};
ws.onerror = (err) => console.error("WS error:", err);
ws.onclose = () => console.log("Disconnected");
