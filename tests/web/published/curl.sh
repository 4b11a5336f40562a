# Get analytics dashboard (all users, last 24 hours)
curl -H "Authorization: Bearer YOUR_TOKEN" \
"https://cymetica.com/api/v1/analytics/dashboard?filter=all&period=24h"
# Authenticated request
curl -H "Authorization: Bearer YOUR_TOKEN" \
"https://cymetica.com/api/v1/analytics/dashboard"
# All users, 24h
curl -H "Authorization: Bearer YOUR_TOKEN" \
"https://cymetica.com/api/v1/analytics/dashboard?filter=all&period=24h"
# Humans only, 7-day window
curl -H "Authorization: Bearer YOUR_TOKEN" \
"https://cymetica.com/api/v1/analytics/dashboard?filter=humans&period=7d"
# Agents only, 30-day window
curl -H "Authorization: Bearer YOUR_TOKEN" \
"https://cymetica.com/api/v1/analytics/dashboard?filter=agents&period=30d"
