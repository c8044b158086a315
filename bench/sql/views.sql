-- The view figures of SPEC §8: for each, the query a dashboard runs on the
-- extension's view and the same result computed by a GROUP BY over the raw
-- logs.  bench/run.sh times both, checks that they return the same rows and
-- reports the speedup, at the reference size and at twice as many logs.
--
-- All reference logs lie between midnight (UTC) 29 days ago and now, so
-- "the last 30 days" covers them whatever its exact definition.  Floats
-- are compared rounded to 6 decimals (sums in another order differ in the
-- last bits).  cust-1 is the heaviest customer.

CREATE TABLE bench.view_cases (
    ord integer PRIMARY KEY,
    name text NOT NULL,
    requires text NOT NULL,        -- the object whose absence skips the case
    ours text NOT NULL,
    raw text NOT NULL,
    min_speedup double precision   -- null: no speedup target (see README)
);

INSERT INTO bench.view_cases
SELECT ord, name, requires,
       replace(replace(ours, '$since', quote_literal(since)), '$until', quote_literal(until)),
       replace(replace(raw, '$since', quote_literal(since)), '$until', quote_literal(until)),
       min_speedup
FROM (SELECT (date_trunc('day', now()) - interval '29 days')::text AS since,
             (date_trunc('day', now()) + interval '1 day')::text AS until) w,
(VALUES
 (1, 'users: first page by cost', 'analytics.users', $$
    SELECT customer_identifier, name, email, requests, errors, prompt_tokens, completion_tokens,
           total_tokens, cost, active_days, first_seen, last_active,
           round(avg_latency::numeric, 6) AS avg_latency
    FROM analytics.users ORDER BY cost DESC, customer_identifier LIMIT 50 $$, $$
    SELECT c.customer_identifier, c.name, c.email, l.requests, l.errors, l.prompt_tokens,
           l.completion_tokens, l.total_tokens, l.cost, l.active_days, l.first_seen, l.last_active,
           round(l.avg_latency::numeric, 6) AS avg_latency
    FROM analytics.customers c
    JOIN (SELECT customer_identifier, count(*) AS requests,
                 count(*) FILTER (WHERE status_code >= 400) AS errors,
                 sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
                 sum(total_tokens) AS total_tokens, sum(cost) AS cost,
                 count(DISTINCT (created_at AT TIME ZONE 'UTC')::date) AS active_days,
                 min(created_at) AS first_seen, max(created_at) AS last_active,
                 avg(latency) AS avg_latency
          FROM analytics.logs GROUP BY customer_identifier) l USING (customer_identifier)
    ORDER BY l.cost DESC, c.customer_identifier LIMIT 50 $$, 100.0),
 (2, 'top_users view (30 days, top 10)', 'analytics.top_users', $$
    SELECT rank, customer_identifier, name, email, requests, total_tokens, cost
    FROM analytics.top_users ORDER BY rank LIMIT 10 $$, $$
    SELECT rank() OVER (ORDER BY s.cost DESC) AS rank,
           s.customer_identifier, c.name, c.email, s.requests, s.total_tokens, s.cost
    FROM (SELECT customer_identifier, count(*) AS requests, sum(total_tokens) AS total_tokens,
                 sum(cost) AS cost
          FROM analytics.logs WHERE created_at >= $since::timestamptz
          GROUP BY customer_identifier ORDER BY cost DESC, customer_identifier LIMIT 10) s
    JOIN analytics.customers c USING (customer_identifier) $$, 100.0),
 (3, 'top_users(since, until, ''requests'', 10)', 'analytics.top_users(', $$
    SELECT rank, customer_identifier, requests, total_tokens, cost
    FROM analytics.top_users($since, $until, 'requests', 10) $$, $$
    SELECT rank() OVER (ORDER BY s.requests DESC) AS rank,
           s.customer_identifier, s.requests, s.total_tokens, s.cost
    FROM (SELECT customer_identifier, count(*) AS requests, sum(total_tokens) AS total_tokens,
                 sum(cost) AS cost
          FROM analytics.logs
          WHERE created_at >= $since::timestamptz AND created_at < $until::timestamptz
          GROUP BY customer_identifier ORDER BY requests DESC, customer_identifier LIMIT 10) s $$, 100.0),
 (4, 'daily_active_users, 30 days', 'analytics.daily_active_users', $$
    SELECT day, active_users, requests, cost
    FROM analytics.daily_active_users WHERE day >= $since::date ORDER BY day $$, $$
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(DISTINCT customer_identifier) AS active_users,
           count(*) AS requests, sum(cost) AS cost
    FROM analytics.logs WHERE created_at >= $since::timestamptz
    GROUP BY 1 ORDER BY 1 $$, 100.0),
 (5, 'active_users(since, until, ''week'')', 'analytics.active_users(', $$
    SELECT bucket_start, active_users FROM analytics.active_users($since, $until, 'week') $$, $$
    SELECT date_trunc('week', created_at AT TIME ZONE 'UTC')::date AS bucket,
           count(DISTINCT customer_identifier) AS active_users
    FROM analytics.logs
    WHERE created_at >= $since::timestamptz AND created_at < $until::timestamptz
    GROUP BY 1 $$, 100.0),
 (6, 'active_users(since, until, ''month'')', 'analytics.active_users(', $$
    SELECT bucket_start, active_users FROM analytics.active_users($since, $until, 'month') $$, $$
    SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS bucket,
           count(DISTINCT customer_identifier) AS active_users
    FROM analytics.logs
    WHERE created_at >= $since::timestamptz AND created_at < $until::timestamptz
    GROUP BY 1 $$, 100.0),
 (7, 'cost_by_user, 30 days (all rows)', 'analytics.cost_by_user', $$
    SELECT day, customer_identifier, requests, prompt_tokens, completion_tokens, cost
    FROM analytics.cost_by_user WHERE day >= $since::date $$, $$
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, customer_identifier, count(*) AS requests,
           sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
           sum(cost) AS cost
    FROM analytics.logs WHERE created_at >= $since::timestamptz
    GROUP BY 1, 2 $$, 100.0),
 (10, 'cost_by_user, 30 days, the 100 costliest rows', 'analytics.cost_by_user', $$
    SELECT day, customer_identifier, requests, prompt_tokens, completion_tokens, cost
    FROM analytics.cost_by_user WHERE day >= $since::date
    ORDER BY cost DESC, day, customer_identifier LIMIT 100 $$, $$
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, customer_identifier, count(*) AS requests,
           sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
           sum(cost) AS cost
    FROM analytics.logs WHERE created_at >= $since::timestamptz
    GROUP BY 1, 2 ORDER BY cost DESC, day, customer_identifier LIMIT 100 $$, 100.0),
 (8, 'customer_logs(heaviest customer), newest 100', 'analytics.customer_logs(', $$
    SELECT id, created_at, model, total_tokens, cost, status_code
    FROM analytics.customer_logs('cust-1', NULL, NULL, 100) $$, $$
    SELECT id, created_at, model, total_tokens, cost, status_code
    FROM analytics.logs WHERE customer_identifier = 'cust-1'
    ORDER BY created_at DESC, id DESC LIMIT 100 $$, NULL),
 (9, 'logs_with_customer, heaviest customer, newest 100', 'analytics.logs_with_customer', $$
    SELECT id, customer_identifier, name, email, model, cost
    FROM analytics.logs_with_customer WHERE customer_identifier = 'cust-1'
    ORDER BY created_at DESC, id DESC LIMIT 100 $$, $$
    SELECT l.id, l.customer_identifier, c.name, c.email, l.model, l.cost
    FROM analytics.logs l JOIN analytics.customers c USING (customer_identifier)
    WHERE l.customer_identifier = 'cust-1'
    ORDER BY l.created_at DESC, l.id DESC LIMIT 100 $$, NULL)
) AS v(ord, name, requires, ours, raw, min_speedup);

-- The Users page's first page by every sort field of SPEC 8, both ways,
-- ties broken by customer_identifier; customers without logs included
-- (cost, requests and active_days 0, first_seen and last_active null).
INSERT INTO bench.view_cases
SELECT 20 + n, format('users: first page by %s %s', f, d), 'analytics.users',
       format($$
    SELECT customer_identifier, requests, total_tokens, cost, active_days, first_seen, last_active
    FROM analytics.users ORDER BY %s %s, customer_identifier LIMIT 50 $$, f, d),
       format($$
    SELECT c.customer_identifier, coalesce(l.requests, 0) AS requests,
           coalesce(l.total_tokens, 0) AS total_tokens, coalesce(l.cost, 0) AS cost,
           coalesce(l.active_days, 0) AS active_days, l.first_seen, l.last_active
    FROM analytics.customers c
    LEFT JOIN (SELECT customer_identifier, count(*) AS requests, sum(total_tokens) AS total_tokens,
                      sum(cost) AS cost,
                      count(DISTINCT (created_at AT TIME ZONE 'UTC')::date) AS active_days,
                      min(created_at) AS first_seen, max(created_at) AS last_active
               FROM analytics.logs GROUP BY customer_identifier) l USING (customer_identifier)
    ORDER BY %s %s, c.customer_identifier LIMIT 50 $$, f, d),
       100.0
FROM (SELECT row_number() OVER () - 1 AS n, f, d
      FROM unnest(ARRAY['cost', 'requests', 'total_tokens', 'last_active', 'first_seen', 'active_days']) f,
           unnest(ARRAY['DESC', 'ASC']) d) s;
