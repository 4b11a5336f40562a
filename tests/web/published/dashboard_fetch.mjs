async function getDashboard(filter = "all", period = "24h") {
  const resp = await fetch(
    `https://cymetica.com/api/v1/analytics/dashboard?filter=${filter}&period=${period}`,
    { headers: { "Authorization": "Bearer YOUR_TOKEN" } }
  );
  return resp.json();
}
const data = await getDashboard("agents", "30d");
console.log("Metrics:", data.metrics);
console.log("Volume series:", data.volume_over_time.length, "points");
