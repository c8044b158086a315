// The Users page: analytics.users by cost, the first 1,000 rows.
import {customerPages, read, writeJson} from "../../lib/db.js";

const ROWS = 1000;
writeJson(
  await read(async (query) => {
    const pages = await customerPages(query);
    const [{customers}] = await query("SELECT count(*) AS customers FROM analytics.customers");
    const users = await query(
      `SELECT customer_identifier, name, email, requests, errors, total_tokens, cost, billed_cost,
              avg_latency, top_model, active_days, last_active, period_budget, period_spend,
              total_budget, total_spend, blocked, cache_hit_rate, average_monthly_cost
         FROM analytics.users
        ORDER BY cost DESC, customer_identifier
        LIMIT $1`,
      [ROWS]
    );
    return {customers, users: users.map((u) => ({...u, page: pages.get(u.customer_identifier) ?? null}))};
  })
);
