#!/bin/bash
# The demo: set up (packages, build, install), start a throwaway cluster with
# the library preloaded, load realistic synthetic LLM traffic, and print what
# the extension shows.  `--keep` leaves the cluster running afterwards.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lock.sh"
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

KEEP=false
[ "${1:-}" = "--keep" ] && KEEP=true
DIR=/tmp/analytics-demo
PORT=55432
export PGHOST="$DIR" PGPORT="$PORT" PGDATABASE=demo

run_as "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
rm -rf "$DIR"
mkdir -p "$DIR"
[ "$(id -u)" -eq 0 ] && chown "$RUN_AS" "$DIR"
run_as "$PGBIN/initdb" -D "$DIR/data" -A trust -U "$RUN_AS" >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$DIR'
port = $PORT
shared_preload_libraries = 'analytics'
analytics.rollup_interval = '500ms'
CONF
cleanup() {
	if ! $KEEP; then
		run_as "$PGBIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT
run_as "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
psql() { run_as env PGHOST="$PGHOST" PGPORT="$PGPORT" "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -U "$RUN_AS" "$@"; }
psql -q -d postgres -c "CREATE DATABASE demo"
psql -q -c "CREATE EXTENSION analytics"

echo "== loading synthetic traffic"
psql -q <<'SQL'
-- Customers created before any request, some with budgets and a markup.
SELECT count(analytics.upsert_customer(jsonb_build_object(
           'customer_identifier', 'customer_' || i,
           'name', initcap(first) || ' ' || initcap(last),
           'email', first || '.' || last || i || '@example.com',
           'metadata', jsonb_build_object('plan', CASE WHEN i % 10 = 0 THEN 'enterprise' WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END),
           'period_budget', CASE WHEN i % 10 = 0 THEN 50 WHEN i % 3 = 0 THEN 5 END,
           'period_start', to_char(date_trunc('month', now()), 'YYYY-MM-DD"T"HH24:MI:SSOF'),
           'markup_percentage', CASE WHEN i % 10 = 0 THEN 20 ELSE 0 END))) AS customers_created
  FROM generate_series(1, 3000) AS i,
       LATERAL (SELECT (ARRAY['ada','alan','grace','linus','ken','barbara','edsger','donald','margaret','john'])[1 + i % 10] AS first,
                       (ARRAY['lovelace','turing','hopper','torvalds','thompson','liskov','dijkstra','knuth','hamilton','backus'])[1 + (i / 10) % 10] AS last) n;

-- Two weeks of requests: a heavy tail of users (a few do most of the
-- traffic), four models, about 2% errors, latencies, the customer_params path
-- of ingest for some and plain INSERTs for the rest.
SET analytics.budget_enforcement = record;
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens, completion_tokens,
                            latency, time_to_first_token, status_code, thread_identifier)
SELECT now() - (random() * interval '14 days'),
       'customer_' || (1 + floor(3000 * power(random(), 4)))::int,
       model, p, c, lat, lat * (0.1 + random() * 0.2),
       CASE WHEN random() < 0.02 THEN 429 ELSE 200 END,
       'thread_' || (g % 500)
  FROM (SELECT g,
               (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-sonnet-4', 'gemini-2.0-flash'])[1 + floor(power(random(), 1.5) * 4)::int] AS model,
               (50 + random() * 2000)::int AS p, (20 + random() * 800)::int AS c,
               0.3 + random() * random() * 8 AS lat
          FROM generate_series(1, 60000) AS g) r;
UPDATE analytics.logs SET error_message = 'Rate limit reached for requests' WHERE status_code = 429;
RESET analytics.budget_enforcement;
SQL
psql -q -At <<'SQL'
SELECT 'ingest_openai (seed request): log ' || analytics.ingest_openai(
  '{"model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Tell me a long story"}],
    "customer_params": {"customer_identifier": "customer_1",
                        "name": "Hendrix Liu", "email": "hendrix@keywordsai.co"}}',
  '{"id": "chatcmpl-demo", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Once upon a time..."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 850, "total_tokens": 862}}', 2.4);
SQL

echo "== waiting for the rollup worker to catch up"
for _ in $(seq 1 120); do
	pending=$(psql -At -c "SELECT logs_pending FROM analytics.status")
	[ "$pending" = "0" ] && break
	sleep 0.5
done
psql -c "SELECT * FROM analytics.status"

echo "== the Users page (top 10 by cost)"
psql -c "SELECT customer_identifier, name, requests, errors, total_tokens, round(cost, 4) AS cost,
                round(billed_cost, 4) AS billed_cost, round(avg_latency::numeric, 2) AS avg_latency,
                top_model, active_days, period_budget, round(period_spend, 4) AS period_spend, period_end
           FROM analytics.users ORDER BY cost DESC LIMIT 10"
echo "== top users, last 30 days"
psql -c "SELECT rank, customer_identifier, name, email, requests, total_tokens, round(cost, 4) AS cost FROM analytics.top_users LIMIT 10"
echo "== top users by requests, last 7 days"
psql -c "SELECT rank, customer_identifier, requests FROM analytics.top_users(now() - interval '7 days', now(), 'requests', 5)"
echo "== daily active users, last 7 days"
psql -c "SELECT day, active_users, requests, round(cost, 2) AS cost, is_partial FROM analytics.daily_active_users ORDER BY day DESC LIMIT 7"
echo "== weekly active users"
psql -c "SELECT bucket_start, active_users, requests, round(cost, 2) AS cost, is_partial FROM analytics.active_users(now() - interval '14 days', now(), 'week')"
echo "== LLM cost by user, yesterday (top 5)"
psql -c "SELECT day, customer_identifier, requests, prompt_tokens, completion_tokens, round(cost, 4) AS cost
           FROM analytics.cost_by_user WHERE day = current_date - 1 ORDER BY cost DESC LIMIT 5"
echo "== a customer's latest logs, with the customer beside each"
psql -c "SELECT l.id, l.created_at, l.model, l.total_tokens, round(l.cost, 6) AS cost, l.status_code, c.name, c.email
           FROM analytics.customer_logs('customer_1', lim => 5) l
           JOIN analytics.logs_with_customer c USING (id)"
echo "== budget check a proxy makes before calling the model"
psql -c "SELECT * FROM analytics.check_budget('customer_3')"
echo "== a request over budget is rejected at write time"
psql -c "UPDATE analytics.customers SET period_budget = 0.01 WHERE customer_identifier = 'customer_3'"
psql -c "INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens) VALUES ('customer_3', 'gpt-4o', 1000, 1000)" || true
echo "== a proxy admits a request before calling the model, then logs it with the admission's id"
psql -c "SELECT customer_identifier, period_budget, rate_limit FROM analytics.upsert_customer('{\"customer_identifier\": \"proxy_user\", \"period_budget\": 5, \"rate_limit\": 2}')"
psql -At -c "SELECT analytics.admit('proxy_user', estimated_cost => 0.02, estimated_tokens => 1500)" >/dev/null
psql -c "SELECT analytics.ingest(json_build_object('model', 'gpt-4o', 'customer_identifier', 'proxy_user',
           'admission_id', (SELECT max(id) FROM analytics.admissions WHERE customer_identifier = 'proxy_user'),
           'usage', json_build_object('prompt_tokens', 1200, 'completion_tokens', 310))) AS log_id"
psql -c "SELECT id, estimated_cost, settled_by, settled_at IS NOT NULL AS settled FROM analytics.admissions WHERE customer_identifier = 'proxy_user'"
echo "== its third request within a minute is over its rate_limit of 2: UA004 says when to retry"
psql -At -c "SELECT analytics.admit('proxy_user')" >/dev/null
psql -c "SELECT analytics.admit('proxy_user')" || true
psql -c "SELECT allowed, reason, rate_limit, rate_remaining, retry_after, open_admissions FROM analytics.check_budget('proxy_user')"
echo "== a budget alert: the log that takes proxy_user past 80% of its \$5 budget records a budget event and sends it on NOTIFY analytics_budget"
psql <<'SQL'
LISTEN analytics_budget;
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "proxy_user", "cost": 4.2}') > 0 AS logged;
SELECT kind, threshold, spend, budget, period_end FROM analytics.budget_events WHERE customer_identifier = 'proxy_user';
SQL
if $KEEP; then
	echo "The cluster keeps running: psql -h $DIR -p $PORT -d demo"
fi
