const resp = await fetch(
  "https://cymetica.com/api/v1/analytics/dashboard?filter=all&period=24h",
  { headers: { "Authorization": "Bearer YOUR_TOKEN" } }
);
const data = await resp.json();
const m = data.metrics;
console.log(`Active Users: ${m.active_users.value}`);
console.log(`Volume: ${m.trading_volume.value} ${m.trading_volume.suffix}`);
