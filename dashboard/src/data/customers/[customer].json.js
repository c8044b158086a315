// A customer's page (--customer: the page's path segment, see slug() in
// lib/db.js): the Users page row, the budget check a proxy would make, usage
// by day and model over the last 30 days (from the customer's logs, by the
// (customer_identifier, created_at) index), and the 20 latest logs.
import {parseArgs} from "node:util";
import {read, slug, topCustomers, writeJson} from "../../../lib/db.js";

const {values} = parseArgs({options: {customer: {type: "string"}}});
writeJson(
  await read(async (query) => {
    const found = (await topCustomers(query)).find((c) => slug(c.customer_identifier) === values.customer);
    if (!found) throw new Error(`no customer of the top 100 has the page ${values.customer}`);
    const id = found.customer_identifier;
    const [user] = await query("SELECT * FROM analytics.users WHERE customer_identifier = $1", [id]);
    const [budget] = await query("SELECT * FROM analytics.check_budget($1)", [id]);
    const usage = await query(
      `SELECT created_at::date AS day, model, count(*) AS requests,
              sum(total_tokens)::bigint AS total_tokens, sum(cost) AS cost
         FROM analytics.customer_logs($1, now()::date - 29, NULL, NULL)
        GROUP BY 1, 2
        ORDER BY 1, 2`,
      [id]
    );
    const logs = await query(
      `SELECT id, created_at, model, prompt_tokens, completion_tokens, cost, latency,
              time_to_first_token, status_code, error_message, thread_identifier
         FROM analytics.customer_logs($1, lim => 20)`,
      [id]
    );
    return {rank: found.rank, user, budget, usage, logs};
  })
);
