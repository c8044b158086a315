# Worker lifecycle and crash test, on a cluster that preloads the library:
# a worker comes to every database with the extension that has new logs and
# stays in no other, folds them without being called, leaves when idle,
# comes again after being terminated, and after a kill -9 of the server in
# the middle of ingest the rollup plus the logs not yet folded, and the
# views, equal the GROUP BY over the raw logs.  A pass that fails is recorded
# in analytics.status and retried after a back-off, and logs the fold cannot
# count are set aside without a failed pass.  Bounded to 90 seconds.
use strict;
use warnings;

use AnalyticsTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $start = time;
my $limit = 90;
my $node  = analytics_node('worker', conf => "analytics.rollup_interval = '200ms'");

# query(DB, SQL): the result of SQL, dying on error.
sub query { return $node->safe_psql(@_); }

# rollup_pid(DB): the pid of the worker of DB.
sub rollup_pid
{
	return query($_[0],
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = '$_[0]'");
}

my $insert_sql = q{INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, latency, status_code, created_at)
SELECT 'c' || (g % 13), (ARRAY['gpt-4o', 'gpt-4o-mini', 'other'])[1 + g % 3], g % 500, g % 70,
       CASE WHEN g % 4 <> 0 THEN (g % 9) / 3.0 END, CASE WHEN g % 17 = 0 THEN 500 ELSE 200 END,
       now() - (g % 72) * interval '1 hour'
  FROM generate_series(1, 40) g;};

query('postgres', "CREATE DATABASE $_") for qw(db_a db_b db_c);
query($_, 'CREATE EXTENSION analytics') for qw(db_a db_b);

ok( wait_until($node, 'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'analytics launcher'", 10),
	'the launcher is in pg_stat_activity');

note 'the worker folds new logs without being called';
for (1 .. 5)
{
	query('db_a', $insert_sql);
	query('db_b', $insert_sql);
}
for my $db (qw(db_a db_b))
{
	ok( wait_until($node, $db,
			'SELECT last_served IS NOT NULL AND waiting_since IS NULL AND logs_pending = 0 AND watermark > 0 FROM analytics.status', 25),
		"$db: a worker folded the logs, and status says when")
	  or diag query($db, 'SELECT * FROM analytics.status');
	is(query($db, $USAGE_MISMATCHES), '0', "$db: usage_daily equals the raw logs");
}
query('db_a', $insert_sql);
ok( wait_until($node, 'db_a',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = current_database() AND application_name = 'analytics rollup'",
		10),
	'the worker is visible with its application_name');
my $idle = 0;
for (1 .. 3)
{
	$idle++
	  if query('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname IN ('db_c', 'postgres')"
	  ) eq '0';
	sleep 0.3;
}
cmp_ok($idle, '>=', 2, 'no worker stays in a database without the extension');

note 'a terminated worker comes back and folds again';
my $old = rollup_pid('db_a');
isnt($old, '', 'a worker runs in db_a');
query('db_a', "SELECT pg_terminate_backend($old)");
query('db_a', $insert_sql);
ok( wait_until($node, 'db_a',
		"SELECT logs_pending = 0 AND NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $old) FROM analytics.status", 15),
	'a new worker folds');
is(query('db_a', $USAGE_MISMATCHES), '0', 'db_a: usage_daily equals the raw logs after the restart');
ok( wait_until($node, 'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'analytics rollup'", 15),
	'without new logs the workers leave');

note 'kill -9 of the server in the middle of ingest';
# Autocommitted inserts and two-statement transactions, as fast as they go.
my @loops;
for my $db (qw(db_a db_b))
{
	push @loops,
	  IPC::Run::start(
		[
			'bash', '-c', 'yes "$0" | "$@" >/dev/null 2>&1',
			"$insert_sql BEGIN; $insert_sql $insert_sql COMMIT;",
			$node->installed_command('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1',
			'-h', $node->host, '-p', $node->port, '-d', $db
		]);
}
sleep 3;
my $before = query('db_a', 'SELECT count(*) FROM analytics.logs');
ok(kill9_server($node), 'the killed server processes exited');
$_->finish for @loops;
$node->start;

for my $db (qw(db_a db_b))
{
	ok( wait_until($node, $db, 'SELECT logs_pending = 0 FROM analytics.status', 30),
		"$db: a worker caught up after the crash")
	  or diag query($db, 'SELECT * FROM analytics.status');
	is(query($db, $USAGE_MISMATCHES), '0', "$db: usage_daily equals the raw logs after the crash");
	is(query($db, $VIEW_MISMATCHES),  '0', "$db: the views equal the raw logs after the crash");
	is( query($db,
			'SELECT (SELECT sum(requests) FROM analytics.usage_daily) = (SELECT count(*) FROM analytics.logs)'),
		't',
		"$db: requests counted equal the number of logs");
}
my $after = query('db_a', 'SELECT count(*) FROM analytics.logs');
cmp_ok($after, '>=', $before, 'no log was lost in the crash');
diag "logs in db_a: $after (>= $before seen during ingest)";

# One more round of ingest after recovery is folded too.
query('db_a', $insert_sql);
ok(wait_until($node, 'db_a', 'SELECT logs_pending = 0 FROM analytics.status', 15),
	'folding after the crash');
is(query('db_a', $USAGE_MISMATCHES), '0', 'db_a: usage_daily equals the raw logs after post-crash ingest');
is(query('db_a', $VIEW_MISMATCHES),  '0', 'db_a: the views equal the raw logs after post-crash ingest');

# No pass failed along the way (a failing pass logs an ERROR and restarts).
my @errors = grep { /ERROR:/ } split /\n/, log_since($node, 0);
is(scalar @errors, 0, 'no error in the server log') or diag join("\n", @errors[ 0 .. 4 ]);

note 'a failing pass is recorded and retried after a back-off';
my $seen = log_offset($node);
query('db_b', "ALTER DATABASE db_b SET lock_timeout = '300ms'");
# A worker still there from before connected without it.
query('db_b', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'db_b'");
ok( wait_until($node, 'db_b',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'db_b'", 10),
	'no worker left in db_b');
# Hold the rollup away from the workers for 4 seconds: their passes time out.
my $holder = $node->background_psql('db_b');
$holder->query_until(qr/held/,
	"BEGIN; LOCK TABLE analytics.usage_daily IN ACCESS EXCLUSIVE MODE; \\echo held\n");
my $held_at  = time;
query('db_b', $insert_sql);
ok( wait_until($node, 'db_b',
		"SELECT last_error LIKE '55P03:%' AND last_error_at > now() - interval '3 seconds' FROM analytics.status",
		4),
	'the failed pass is in analytics.status')
  or diag query('db_b', 'SELECT last_error FROM analytics.status');
sleep(4 - (time - $held_at)) if time - $held_at < 4;
$holder->query_safe('COMMIT');
$holder->quit;
ok(wait_until($node, 'db_b', 'SELECT logs_pending = 0 FROM analytics.status', 15),
	'folding after the failed passes');
my $timeouts = () = log_since($node, $seen) =~ /canceling statement due to lock timeout/g;
ok($timeouts >= 1 && $timeouts <= 4, "the failed pass was retried with a growing delay ($timeouts failures in 4 s)");
is(query('db_b', $VIEW_MISMATCHES), '0', 'db_b: the views equal the raw logs after the failed passes');
query('db_b', 'ALTER DATABASE db_b RESET lock_timeout');
my $last_error_at = query('db_b', 'SELECT last_error_at FROM analytics.status');

note 'logs the fold cannot count are set aside by the worker';
# As 1.0 could record them (no bounds then): written with the triggers off.
query('db_b', q{SET session_replication_role = replica;
INSERT INTO analytics.logs (customer_identifier, model, cost, latency) VALUES ('c1', 'gpt-4o', 0, 1e308), ('c1', 'gpt-4o', 0, 1e308);
INSERT INTO analytics.logs (customer_identifier, model, cost) SELECT 'c2', string_agg(md5(i::text), ''), 0 FROM generate_series(1, 200) i;});
query('db_b', $insert_sql);
ok( wait_until($node, 'db_b',
		'SELECT logs_pending = 0 AND logs_set_aside = 2 FROM analytics.status', 15),
	'the worker went past the logs it cannot fold')
  or diag query('db_b', 'SELECT * FROM analytics.status');
is(query('db_b', 'SELECT last_error_at FROM analytics.status'), $last_error_at,
	'no pass failed on the logs it cannot fold');
is(query('db_b', "SELECT string_agg(sqlstate, ',' ORDER BY log_id) FROM analytics.rollup_set_aside"),
	'22003,54000', 'the set-aside logs and their SQLSTATEs')
  or diag query('db_b', 'SELECT log_id, sqlstate, error FROM analytics.rollup_set_aside');
like(log_since($node, 0), qr/set aside log/, 'a warning about the set-aside logs in the server log');
# The only errors since are the lock timeouts the test caused.
@errors = grep { /ERROR:/ && !/canceling statement due to lock timeout/ }
  split /\n/, log_since($node, $seen);
is(scalar @errors, 0, 'no unexpected error in the server log') or diag join("\n", @errors[ 0 .. 4 ]);

cmp_ok(time - $start, '<', $limit, "took less than $limit seconds");
diag sprintf('worker test: %.0f s', time - $start);
$node->stop;
done_testing();
