# The rollup workers are a bounded pool that serves every database: 30
# databases with the extension on a server with the default
# max_worker_processes (8) and analytics.max_workers (2).  After a burst of
# logs in each, every database's logs_pending reaches 0 within 10 s; again
# after one database gets a backlog of 500,000 logs while the others keep
# receiving logs.  Never more than analytics.max_workers workers at once;
# every rollup equals the GROUP BY over the raw logs; analytics.databases
# limits the databases served; idle databases keep no worker.
use strict;
use warnings;

use AnalyticsTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use Time::HiRes qw(time usleep);

my $N = 30;
my $node = analytics_node('pool', conf => "max_worker_processes = 8\nfsync = off\n");
is($node->safe_psql('postgres', 'SHOW max_worker_processes'), '8',
	'the server has the default max_worker_processes');
is($node->safe_psql('postgres', 'SHOW analytics.max_workers'), '2',
	'analytics.max_workers defaults to 2');

my @dbs = map { "d$_" } 1 .. $N;
for my $db (@dbs)
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION analytics');
}

my $logs_sql = sub {
	my ($n, $customers) = @_;
	return "INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost, created_at)
	        SELECT 'c' || (g % $customers), (ARRAY['gpt-4o', 'gpt-4o-mini'])[1 + g % 2], g % 500, g % 70,
	               (g % 97) / 1000.0, now() - (g % 72) * interval '1 hour'
	          FROM generate_series(1, $n) g";
};

# Most rollup workers seen at once, sampled while waiting.
my $most_workers = 0;
my $sample_workers = sub {
	my $n = $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'analytics rollup'");
	$most_workers = $n if $n > $most_workers;
};

# all_folded(LIMIT, DBS...): seconds until every database's logs_pending is
# 0 (polling), or undef after LIMIT seconds.
my $all_folded = sub {
	my ($limit, @left) = @_;
	my $start = time;
	while (@left && time - $start < $limit)
	{
		$sample_workers->();
		@left = grep {
			$node->safe_psql($_, 'SELECT logs_pending FROM analytics.status') ne '0'
		} @left;
		usleep(100_000) if @left;
	}
	return @left ? undef : time - $start;
};

my $exact = sub {
	my ($db) = @_;
	return $node->safe_psql($db, $USAGE_MISMATCHES) eq '0'
	  && $node->safe_psql($db, $VIEW_MISMATCHES) eq '0';
};

# 1. A burst of logs in every database.
$node->safe_psql($_, $logs_sql->(1000, 13)) for @dbs;
my $took = $all_folded->(10, @dbs);
ok(defined $took, "after a burst in each of $N databases, all are folded within 10 s");
diag(sprintf('burst: every database folded %.2f s after the last insert', $took // -1));
is(scalar(grep { !$exact->($_) } @dbs), 0, 'every database\'s rollups and views equal the raw GROUP BY');
ok($node->safe_psql('d1', 'SELECT last_served IS NOT NULL AND waiting_since IS NULL FROM analytics.status') eq 't',
	'status shows when the database was last served, and nothing waiting');

# 2. A backlog of 500,000 logs in d1 while the others keep receiving logs.
my $t0 = time;
$node->safe_psql('d1', $logs_sql->(500_000, 1000));
diag(sprintf('backlog: 500,000 logs written in %.1f s', time - $t0));
for my $round (1 .. 3)
{
	$node->safe_psql($_, $logs_sql->(200, 7)) for @dbs[1 .. $#dbs];
	$sample_workers->();
}
my @others = @dbs[1 .. $#dbs];
my $others_took = $all_folded->(10, @others);
ok(defined $others_took, 'with a backlog in one database, the others are folded within 10 s');
$took = $all_folded->(10, 'd1');
ok(defined $took, 'and the backlog within 10 s after them');
diag(sprintf('backlog: the others folded %.2f s after their last insert, the backlog %.2f s later',
	$others_took // -1, $took // -1));
is(scalar(grep { !$exact->($_) } @dbs), 0, 'every database still equals the raw GROUP BY');
diag("most rollup workers seen at once: $most_workers");
ok($most_workers >= 1 && $most_workers <= 2, "never more than analytics.max_workers workers at once (most seen: $most_workers)");

# 3. Idle databases keep no worker.
ok(wait_until($node, 'postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'analytics rollup'", 15),
	'without new logs the workers leave');

# 4. analytics.databases: only the named databases are served.
$node->append_conf('postgresql.conf', "analytics.databases = 'd1, d2'");
$node->reload;
usleep(1_500_000);
$node->safe_psql($_, $logs_sql->(100, 3)) for qw(d1 d2 d3);
ok(defined $all_folded->(10, qw(d1 d2)), 'the named databases are served');
usleep(2_000_000);
is($node->safe_psql('d3', 'SELECT logs_pending FROM analytics.status'), '100',
	'a database not named is not served');
is($node->safe_psql('d3', 'SELECT last_served IS NULL AND waiting_since IS NULL FROM analytics.status'), 't',
	'and its status says so');
$node->append_conf('postgresql.conf', "analytics.databases = ''");
$node->reload;
ok(defined $all_folded->(10, 'd3'), 'served again once analytics.databases is empty');

# 5. A database marked as having logs that then loses the extension: a
# worker looks, finds none, and is not started again and again.
my $d5 = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'd5'");
$node->append_conf('postgresql.conf', "analytics.worker_enabled = off");
$node->reload;
ok(wait_until($node, 'postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'analytics rollup'", 10),
	'workers off');
$node->safe_psql('d5', $logs_sql->(10, 2));
$node->safe_psql('d5', 'DROP EXTENSION analytics CASCADE');
my $starts_from = length(slurp_file($node->logfile));
$node->append_conf('postgresql.conf', "analytics.worker_enabled = on\nlog_min_messages = debug1");
$node->reload;
usleep(3_000_000);
$node->append_conf('postgresql.conf', "log_min_messages = warning");
$node->reload;
my $starts = () = substr(slurp_file($node->logfile), $starts_from)
  =~ /starting background worker process "analytics rollup worker for database $d5"/g;
ok($starts >= 1 && $starts <= 2, "a marked database without the extension is looked at, not in a loop ($starts starts in 3 s)");

# 6. A launcher that restarts counts the workers of the one before: with
# analytics.max_workers = 1 and logs coming all the time, never two workers.
$node->append_conf('postgresql.conf', "analytics.max_workers = 1");
$node->reload;
my $writer = IPC::Run::start(
	[ 'bash', '-c', 'for i in $(seq 1 60); do echo "$0;"; sleep 0.1; done | "$@" >/dev/null 2>&1',
	  $logs_sql->(5, 3), $node->installed_command('psql'), '-X', '-q',
	  '-h', $node->host, '-p', $node->port, '-d', 'd1' ]);
ok(wait_until($node, 'postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'd1'", 10),
	'a worker serves d1');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'analytics launcher'");
my $most = 0;
for (1 .. 30)
{
	my $n = $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'analytics rollup'");
	$most = $n if $n > $most;
	usleep(100_000);
}
$writer->finish;
is($most, 1, 'after the launcher restarts, still one worker with analytics.max_workers = 1');
ok(wait_until($node, 'postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'analytics launcher'", 10),
	'the launcher came back');
ok(defined $all_folded->(15, 'd1'), 'and d1 is folded');
ok($exact->('d1'), 'd1 equals the raw GROUP BY');

my $log = slurp_file($node->logfile);
unlike($log, qr/could not start|ERROR:/, 'no worker start failures or errors in the server log');

$node->stop;
done_testing();
