// The Overview page: summary cards, top users (the analytics.top_users
// view: 30 days, 10 rows), daily and weekly active users with the current
// day and week marked partial, and the daily cost of the top users.  Days
// are calendar days of the rollup time zone (the session's, see lib/db.js).
import {customerPages, read, writeJson} from "../../lib/db.js";

writeJson(
  await read(async (query) => {
    const pages = await customerPages(query);
    const page = (row) => ({...row, page: pages.get(row.customer_identifier) ?? null});
    const [summary] = await query(`
      SELECT (SELECT count(*) FROM analytics.customers) AS customers,
             now()::date - 29 AS since, now()::date AS today,
             coalesce(sum(d.requests), 0)::bigint AS requests,
             coalesce(sum(d.cost), 0) AS cost,
             (SELECT a.active_users FROM analytics.daily_active_users a WHERE a.day = now()::date) AS active_today
        FROM analytics.daily_active_users d
       WHERE d.day >= now()::date - 29 AND d.day <= now()::date`);
    const topUsers = (await query("SELECT * FROM analytics.top_users ORDER BY rank, customer_identifier")).map(page);
    const dau = await query(`
      SELECT day, active_users, requests, cost, is_partial
        FROM analytics.daily_active_users
       WHERE day >= now()::date - 29
       ORDER BY day`);
    const wau = await query(`
      SELECT bucket_start AS week, active_users, requests, cost, is_partial
        FROM analytics.active_users(date_trunc('week', now()) - interval '11 weeks', now(), 'week')`);
    const costByTopUsers = await query(
      `SELECT day, customer_identifier, requests, cost
         FROM analytics.cost_by_user
        WHERE day >= now()::date - 29 AND customer_identifier = ANY ($1)
        ORDER BY day, customer_identifier`,
      [topUsers.map((u) => u.customer_identifier)]
    );
    return {summary, topUsers, dau, wau, costByTopUsers};
  })
);
