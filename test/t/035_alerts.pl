# Budget alerts with a real listener (SPEC 11): a psql session LISTENs on
# analytics_budget while 8 pgbench clients push 5 budgeted customers over
# their thresholds, a quarter of the transactions rolling back.  Afterwards
# the notifications received equal the rows of analytics.budget_events (each
# payload is its row, none twice) and the thresholds crossed that the raw
# logs predict; a block sends its event too.
use strict;
use warnings;

use AnalyticsTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = analytics_node('alerts', conf => 'max_connections = 30');

$node->safe_psql('postgres', q{
CREATE EXTENSION analytics;
SELECT analytics.upsert_customer(jsonb_build_object(
        'customer_identifier', 'cust' || n, 'period_budget', 2 + n,
        'total_budget', 4 + n, 'markup_percentage', 10 * (n % 2),
        'alert_thresholds', '[10, 25, 50, 75, 90, 100]'::jsonb))
  FROM generate_series(1, 5) n;
-- One log; a rejection (over budget) is caught, so no client aborts.
CREATE FUNCTION try_log(ident text, cost numeric) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES (ident, 'gpt-4o', cost);
EXCEPTION WHEN SQLSTATE 'UA001' OR SQLSTATE 'UA002' THEN
    NULL;
END $$;});

my $listener = listen_start($node, 'postgres', 'analytics_budget');

my $script = $node->basedir . '/alerts.sql';
PostgreSQL::Test::Utils::append_to_file($script, <<'SQL');
\set c random(1, 5)
\set cents random(1, 30)
\set r random(1, 4)
BEGIN;
SELECT try_log('cust' || :c, :cents / 100.0);
\if :r = 1
ROLLBACK;
\else
COMMIT;
\endif
SQL

my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	[
		$node->installed_command('pgbench'), '-n', '-c', '8', '-j', '4', '-t', '60',
		'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$out, '2>', \$err, IPC::Run::timeout(180));
ok($ok, 'pgbench ran') or diag "$out$err";

$node->safe_psql('postgres',
	q{UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'cust3'});

my $events = $node->safe_psql('postgres', 'SELECT count(*) FROM analytics.budget_events');
my @payloads = listen_payloads($listener, $events, 30);
# A little longer: a duplicate would arrive now.
usleep(500_000);
@payloads = listen_payloads($listener, $events + 1, 1);
listen_stop($listener);
diag scalar(@payloads) . " notifications, $events events";

# Thresholds crossed as the raw logs tell (any commit order reaches the same
# set), with the log that crossed each one: spend at least the threshold,
# less the largest log (0.30 before markup) below it.
my $expected = q{
CREATE TEMP VIEW crossed AS
SELECT c.customer_identifier, k.kind, t AS threshold, k.budget
  FROM analytics.customers c
 CROSS JOIN LATERAL (SELECT coalesce(sum(cost), 0) * (1 + c.markup_percentage / 100) AS billed
                       FROM analytics.logs l WHERE l.customer_identifier = c.customer_identifier) s
 CROSS JOIN LATERAL (VALUES ('period_threshold', c.period_budget),
                            ('total_threshold', c.total_budget)) k (kind, budget)
 CROSS JOIN LATERAL unnest(c.alert_thresholds) t
 WHERE s.billed * 100 >= t * k.budget;
};
my $values = join(",\n", map { my $p = $_; "(\$p\$$p\$p\$)" } @payloads) || "(NULL)";
my $check = $node->safe_psql('postgres', $expected . qq{
CREATE TEMP TABLE received (payload jsonb);
INSERT INTO received VALUES $values;
DELETE FROM received WHERE payload IS NULL;
SELECT (SELECT count(*) FROM received),
       (SELECT count(DISTINCT payload) FROM received),
       (SELECT count(*) FROM analytics.budget_events),
       (SELECT count(*) FROM (SELECT payload FROM received
                              EXCEPT ALL SELECT to_jsonb(e) - 'notified' FROM analytics.budget_events e) d)
     + (SELECT count(*) FROM (SELECT to_jsonb(e) - 'notified' FROM analytics.budget_events e
                              EXCEPT ALL SELECT payload FROM received) d),
       (SELECT count(*) FROM crossed),
       (SELECT count(*) FROM (SELECT customer_identifier, kind, threshold, budget FROM crossed
                              EXCEPT ALL SELECT customer_identifier, kind, threshold, budget
                                FROM analytics.budget_events WHERE kind <> 'blocked') d)
     + (SELECT count(*) FROM (SELECT customer_identifier, kind, threshold, budget
                                FROM analytics.budget_events WHERE kind <> 'blocked'
                              EXCEPT ALL SELECT customer_identifier, kind, threshold, budget FROM crossed) d),
       (SELECT count(*) FROM analytics.budget_events e JOIN analytics.customers c USING (customer_identifier)
         WHERE e.kind <> 'blocked'
           AND NOT (e.spend * 100 >= e.threshold * e.budget
                    AND (e.spend - 0.30 * (1 + c.markup_percentage / 100)) * 100 < e.threshold * e.budget)),
       (SELECT count(*) FROM analytics.budget_events WHERE kind = 'blocked' AND customer_identifier = 'cust3'),
       (SELECT count(*) FROM analytics.logs)});
my ($received, $distinct, $rows, $payload_mismatches, $crossed, $crossed_mismatches,
	$bad_spend, $blocked, $logs) = split /\|/, $check;
diag "received=$received rows=$rows crossed=$crossed logs=$logs";

cmp_ok($crossed, '>=', 20, 'the writers crossed many thresholds');
is($received, $rows, 'one notification per budget_events row');
is($distinct, $received, 'no notification twice');
is($payload_mismatches, '0', 'each payload is its row as JSON');
is($rows, $crossed + 1, 'rows: the thresholds crossed, and the block');
is($crossed_mismatches, '0', 'the events are the thresholds the raw logs crossed');
is($bad_spend, '0', 'each event was recorded by the log that reached it');
is($blocked, '1', 'the block sent one event');

$node->stop;
done_testing();
