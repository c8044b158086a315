# No global stall (SPEC §8 "no global stall", §4), on a cluster
# that preloads the library, with the default max_connections and
# max_locks_per_transaction.  Prints every figure (diag).
#
# Part 1, the operator's scenario, scaled down.  One session bulk-loads
# STALL_BULK_LOGS logs (default 1,800,000, about 10 s here) naming 70,000
# customers (without budgets) in ONE INSERT … SELECT.  Two pgbench
# clients (-R 200 -P 1) insert single logs, each for one of 1,000 other
# customers at random (every other one with a budget), from before the bulk
# load starts until after it ends.  2.5 s into the bulk load, five sessions
# at once, each timed from launch to return:
#   budget   upsert_customer raises x-budget's period_budget (a role in
#            analytics_admin)
#   block    UPDATE analytics.customers SET blocked = true (x-block)
#   delete   delete_customer('x-delete')
#   markup   ingest() with customer_params raising x-markup's
#            markup_percentage (superuser)
#   purge    purge_logs(now() - interval '400 days')
# Asserted:
#   - budget, block, delete and markup each return in under 1 s, and the
#     bulk load still had at least 3 s to run when they were launched (the
#     scenario really overlapped);
#   - purge_logs returns without error and deletes exactly the logs older
#     than 400 days.  It is not held to 1 s: it folds the pending logs in
#     first, a fold that takes time with the logs pending (the bulk load's
#     uncommitted ones become gaps, folded once it commits: §5);
#     SPEC §8 requires only that it does not stall the writers, which the
#     pgbench check below covers while it runs;
#   - the pgbench seconds considered are those whose whole interval
#     [N-1, N] (N as printed by `progress: N s`, counted from pgbench's
#     start) lies inside the bulk load's run and the changes', from 0.2 s
#     after the bulk load's launch to 0.2 s before the last of the bulk load
#     and the five sessions returned (purge_logs may outlast the bulk
#     load): the partial first and last seconds are left out.  None of them falls below 100 tps (half the offered 200; a
#     Poisson second varies by about ±10%), and no pgbench client aborted;
#   - the bulk load completed (its rows are all there) with no "out of
#     shared memory" (lock table exhaustion) in its output or the server
#     log;
#   - the changes took effect: x-budget's new budget, x-block's next log
#     rejected with UA003, x-delete and its logs gone, x-markup's new markup
#     rejecting a log that the old markup would have let in (UA001).
# Part 2, only the changed customer's writers wait.  Customer z has spent
# $1.00 with no budget.  Session A: BEGIN; a $0.50 log of z; pg_sleep(4);
# COMMIT.  0.5 s after A's insert, upsert_customer sets z's period_budget to
# $1.20; 0.5 s later a session C inserts a $0.01 log of z, and a session D a
# log of another (budgeted) customer; pgbench runs as in part 1 throughout.
# Asserted: the change returns only after A committed (it waits for z's
# in-flight writer); C returns only after the change and is rejected with
# UA001 (it waited for the change, and the counter rebuilt for the new
# budget counts A's log: $1.50 ≥ $1.20); D returns in under 1 s; no pgbench
# second wholly inside the change's wait falls below 100 tps; z's logs sum
# to $1.50 and check_budget('z') says not allowed, $1.50 spent.
#
# The protocol of 1.0 (SHARE ROW EXCLUSIVE on analytics.logs for every change)
# fails this test: each change waits for the bulk load, and every writer
# queues behind it (0 tps).
use strict;
use warnings;

use AnalyticsTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $nbulk     = $ENV{STALL_BULK_LOGS} // 1800000;
my $nbulkcust = 70000;
my $nothers   = 1000;
my $rate      = 200;
my $min_tps   = $rate / 2;
my $timeout   = 30;
my $db        = 'stall';
my $start     = time;

my $node = analytics_node('stall', conf => "analytics.rollup_interval = '1s'");
my $dir  = $node->basedir;

# query(SQL): the result of SQL in the test database, dying on error.
sub query { return $node->safe_psql($db, $_[0]); }

# timed(NAME, USER, SQL): run SQL in a session of its own in the background
# (statement_timeout $timeout s, so that a stall cannot hang the test;
# application_name stall_NAME); returns the child's pid.
sub timed
{
	my ($name, $user, $sql) = @_;
	return run_timed($node, $dir, $name, $user, $db, $sql,
		PGOPTIONS => "-c statement_timeout=${timeout}s",
		PGAPPNAME => "stall_$name");
}

# pgbench_start(NAME): single-row inserts of the other customers, 2
# clients, -R $rate, progress every second, until stopped with
# pgbench_stop.
sub pgbench_start
{
	my ($name) = @_;
	my $h = IPC::Run::start(
		[
			$node->installed_command('pgbench'), '-n', '-c', '2', '-j', '2',
			'-R', $rate, '-T', '120', '-P', '1', '-h', $node->host, '-p', $node->port,
			'-f', "$dir/others.sql", $db
		],
		'>&', "$dir/$name.log");
	return { name => $name, start => time, h => $h };
}

sub pgbench_stop
{
	my ($bench) = @_;
	$bench->{h}->signal('TERM');
	$bench->{h}->finish;
	return;
}

# pgbench_window(BENCH, FROM, TO, LABEL): report the tps of every progress
# second whose whole interval lies within [FROM, TO] (epoch seconds) and
# check the least of them against $min_tps.
sub pgbench_window
{
	my ($bench, $from, $to, $label) = @_;
	my $log = slurp_file("$dir/$bench->{name}.log");
	my @aborted = grep { /aborted/ } split /\n/, $log;
	ok(!@aborted, "$label: no pgbench client aborted") or diag join("\n", @aborted[ 0 .. 2 ]);
	my ($k, $min, @secs) = (0, undef);
	for (split /\n/, $log)
	{
		next unless /^progress: ([0-9.]+) s, ([0-9.]+) tps/;
		my ($n, $tps) = ($1 + 0, $2 + 0);
		next unless $bench->{start} + $n - 1 >= $from && $bench->{start} + $n <= $to;
		push @secs, sprintf('%d:%.0f', $n, $tps);
		$min = $tps if !defined $min || $tps < $min;
		$k++;
	}
	diag "   pgbench seconds considered (second:tps): @secs";
	diag sprintf('   minimum: %s tps over %d seconds (offered %d; threshold %d = 0.5x)',
		$min // 'none', $k, $rate, $min_tps);
	cmp_ok($k, '>=', 1, "$label: at least one whole pgbench second inside the window ($k)");
	cmp_ok($min, '>=', $min_tps, "$label: min tps per second $min >= $min_tps") if defined $min;
	return;
}

# one_line(TEXT): TEXT on one line, cut at N characters.
sub one_line
{
	my ($text, $n) = @_;
	$text =~ s/\n/ /g;
	return substr($text, 0, $n);
}

# insert_outcome(CUSTOMER, COST): "accepted", or the error with its SQLSTATE.
sub insert_outcome
{
	my ($customer, $cost) = @_;
	my ($ret, $out) = psql_verbose($node, $db,
		"INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('$customer', 'gpt-4o-mini', $cost)");
	return $ret == 0 ? 'accepted' : $out;
}

diag '   max_connections ' . $node->safe_psql('postgres', 'SHOW max_connections')
  . ', max_locks_per_transaction '
  . $node->safe_psql('postgres', 'SHOW max_locks_per_transaction');
$node->safe_psql('postgres', "CREATE DATABASE $db");

query('CREATE EXTENSION analytics');
query(q{DO $$ BEGIN
     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stall_admin') THEN
       CREATE ROLE stall_admin LOGIN IN ROLE analytics_admin;
     END IF;
   END $$});
# The bulk-loaded customers, the pgbench customers (every other one
# budgeted), the customers changed in part 1, z and y of part 2, and some
# logs of them.  Budgets that never reject are 1e9.
query(<<"SQL");
INSERT INTO analytics.customers (customer_identifier, period_budget)
SELECT 'b' || g, NULL FROM generate_series(1, $nbulkcust) g;
INSERT INTO analytics.customers (customer_identifier, period_budget)
SELECT 'p' || g, CASE WHEN g % 2 = 0 THEN 1e9 END FROM generate_series(1, $nothers) g;
INSERT INTO analytics.customers (customer_identifier, period_budget) VALUES
  ('x-budget', 10), ('x-block', 10), ('x-delete', 10), ('x-markup', 1), ('z', NULL), ('y', 100);
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES
  ('x-budget', 'gpt-4o-mini', 9.99), ('x-block', 'gpt-4o-mini', 1), ('x-delete', 'gpt-4o-mini', 1),
  ('x-delete', 'gpt-4o-mini', 2), ('x-markup', 'gpt-4o-mini', 0.70), ('z', 'gpt-4o-mini', 1.00),
  ('y', 'gpt-4o-mini', 1);
INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
SELECT 'old' || g, 'gpt-4o-mini', 0.01, now() - interval '500 days' FROM generate_series(1, 37) g;
SELECT analytics.rollup_now();
SQL
query('VACUUM ANALYZE');
append_to_file("$dir/others.sql", <<"SQL");
\\set c random(1, $nothers)
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost)
VALUES ('p' || :c, 'gpt-4o-mini', 100, 20, 0.0001);
SQL

note "part 1: changes during a bulk load of $nbulk logs naming $nbulkcust other customers";
my $bench1 = pgbench_start('bench1');
sleep 1.5;
my $bulk_pid = timed('bulk', undef,
	"INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost, created_at)
  SELECT 'b' || (1 + g % $nbulkcust), 'gpt-4o-mini', 100 + g % 900, g % 300, 0.0002,
         now() - (g % 29) * interval '1 day'
    FROM generate_series(1, $nbulk) g");
sleep 2.5;
my @change_pids = (
	timed('budget', 'stall_admin',
		q{SELECT (analytics.upsert_customer('{"customer_identifier": "x-budget", "period_budget": 20}')).period_budget}),
	timed('block', undef,
		q{UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'x-block'}),
	timed('delete', 'stall_admin', q{SELECT analytics.delete_customer('x-delete')}),
	timed('markup', undef,
		q{SELECT analytics.ingest('{"model": "gpt-4o-mini", "cost": 0.01, "customer_params": {"customer_identifier": "x-markup", "markup_percentage": 25}}'::jsonb) > 0}),
	# purge_logs folds the bulk load's logs after waiting for it (tens of
	# seconds on a loaded machine): it is held to no time bound, only to not
	# stalling the writers, so it gets a longer statement_timeout of its own.
	timed('purge', 'stall_admin',
		"SET statement_timeout = '" . ($timeout * 4) . "s'; SELECT analytics.purge_logs(now() - interval '400 days')"));
wait_timed($bulk_pid, @change_pids);
sleep 1.5;
pgbench_stop($bench1);

my %t = map { $_ => read_timed($dir, $_) } qw(bulk budget block delete markup purge);
diag "   bulk load: $nbulk logs, $t{bulk}{dur} s, exit $t{bulk}{rc}: " . substr($t{bulk}{out}, 0, 300);
is($t{bulk}{rc}, 0, 'the bulk load completed');
my @oom = grep { /out of shared memory/i } split /\n/, $t{bulk}{out} . "\n" . log_since($node, 0);
ok(!@oom, 'no lock table exhaustion (out of shared memory)') or diag join("\n", @oom[ 0 .. 2 ]);
my $n = query(q{SELECT count(*) FROM analytics.logs WHERE customer_identifier LIKE 'b%'});
is($n, $nbulk, "all $nbulk bulk logs are there ($n)");
my $ran = $t{bulk}{end} - $t{budget}{launch};
cmp_ok($ran, '>=', 3,
	sprintf('the bulk load still ran %.1f s after the changes were launched (>= 3)', $ran));
for my $c (qw(budget block delete markup))
{
	diag "   $c: $t{$c}{dur} s, exit $t{$c}{rc}: " . one_line($t{$c}{out}, 300);
	is($t{$c}{rc}, 0, "$c succeeded");
	cmp_ok($t{$c}{dur}, '<', 1, "$c returned in under 1 s ($t{$c}{dur} s)");
}
diag sprintf("   purge: %s s (returned %+.1f s from the bulk load's end), exit %s: %s",
	$t{purge}{dur}, $t{purge}{end} - $t{bulk}{end}, $t{purge}{rc}, one_line($t{purge}{out}, 300));
is($t{purge}{rc}, 0, 'purge_logs succeeded');
is(one_line($t{purge}{out} =~ s/\n//gr, 200), '37', 'purge_logs deleted the 37 logs older than 400 days');
my ($last_end) = sort { $b <=> $a } map { $t{$_}{end} } keys %t;
diag "   pgbench from the bulk load's launch + 0.2 s to the last return (bulk load or change) - 0.2 s:";
pgbench_window($bench1, $t{bulk}{launch} + 0.2, $last_end - 0.2, 'part 1 pgbench');

diag '   the changes took effect:';
is(query(q{SELECT period_budget FROM analytics.customers WHERE customer_identifier = 'x-budget'}),
	'20', "x-budget's period_budget is 20");
# x-budget spent $9.99: a $1.00 log gets in under either budget, and then
# a $0.01 log ($10.99 spent before it) only under the new $20.
query(q{INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('x-budget', 'gpt-4o-mini', 1.00)});
is(insert_outcome('x-budget', '0.01'), 'accepted',
	"x-budget's next log is counted against the new budget (accepted at \$10.99 spent)");
like(insert_outcome('x-block', '0.01'), qr/UA003/, "x-block's next log is rejected with UA003");
is( query(q{SELECT count(*) FROM analytics.customers WHERE customer_identifier = 'x-delete'}) . '/'
	  . query(q{SELECT count(*) FROM analytics.logs WHERE customer_identifier = 'x-delete'}),
	'0/0', 'x-delete and its logs are gone');
is(query(q{SELECT markup_percentage FROM analytics.customers WHERE customer_identifier = 'x-markup'}),
	'25', "x-markup's markup_percentage is 25");
# x-markup spent $0.71 raw of $1.00: with 25% markup $0.8875, so $0.20 more
# gets in ($1.1375 billed after it), and the next log is rejected; with
# the old 0% markup ($0.91) it would be accepted.
query(q{INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('x-markup', 'gpt-4o-mini', 0.20)});
like(insert_outcome('x-markup', '0.01'), qr/UA001/,
	"x-markup's next log is rejected with UA001 under the new markup");

note "part 2: a change of z waits for z's open writer; only z's writers wait";
my $bench2 = pgbench_start('bench2');
sleep 1.5;
my $a_pid = timed('writer_a', undef, q{BEGIN;
  INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('z', 'gpt-4o-mini', 0.50);
  SELECT pg_sleep(4);
  COMMIT;});
# The change is launched 0.5 s after A's insert returned.
my $a_inserted;
for (1 .. 100)
{
	if (query(q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stall_writer_a' AND query LIKE '%pg_sleep%'})
		eq '1')
	{
		$a_inserted = time;
		last;
	}
	sleep 0.05;
}
BAIL_OUT('writer A did not insert: ' . slurp_file("$dir/writer_a.out")) unless $a_inserted;
sleep 0.5;
my $z_pid = timed('zchange', 'stall_admin',
	q{SELECT (analytics.upsert_customer('{"customer_identifier": "z", "period_budget": 1.20}')).period_budget});
sleep 0.5;
my $c_pid = timed('writer_c', undef,
	q{INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('z', 'gpt-4o-mini', 0.01)});
my $d_pid = timed('writer_d', undef,
	q{INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('y', 'gpt-4o-mini', 0.01)});
wait_timed($a_pid, $z_pid, $c_pid, $d_pid);
sleep 1.5;
pgbench_stop($bench2);

%t = map { $_ => read_timed($dir, $_) } qw(writer_a zchange writer_c writer_d);
diag sprintf('   writer A of z: seen sleeping after its insert at +%.2f s, committed and returned after %s s, exit %s',
	$a_inserted - $t{writer_a}{launch}, $t{writer_a}{dur}, $t{writer_a}{rc});
is($t{writer_a}{rc}, 0, 'writer A committed');
diag sprintf("   change of z's budget: launched %.2f s before A returned; took %s s, exit %s: %s",
	$t{writer_a}{end} - $t{zchange}{launch}, $t{zchange}{dur}, $t{zchange}{rc}, one_line($t{zchange}{out}, 200));
is($t{zchange}{rc}, 0, 'the change of z succeeded');
cmp_ok($t{zchange}{end}, '>=', $t{writer_a}{end} - 0.05,
	sprintf('the change of z returned only after A committed (%+.3f s after A returned)',
		$t{zchange}{end} - $t{writer_a}{end}));
cmp_ok($t{zchange}{dur}, '>=', 3,
	"the change of z waited for A's remaining open time ($t{zchange}{dur} s >= 3)");
diag sprintf('   writer C of z: launched %.2f s after the change; took %s s, exit %s: %s',
	$t{writer_c}{launch} - $t{zchange}{launch}, $t{writer_c}{dur}, $t{writer_c}{rc}, one_line($t{writer_c}{out}, 200));
cmp_ok($t{writer_c}{end}, '>=', $t{zchange}{end} - 0.05,
	sprintf('writer C of z returned only after the change (%+.3f s after it)',
		$t{writer_c}{end} - $t{zchange}{end}));
like($t{writer_c}{out}, qr/UA001/,
	'writer C of z is rejected with UA001 (it obeys the new budget, counted with A\'s log)');
diag "   writer D of y: took $t{writer_d}{dur} s, exit $t{writer_d}{rc}";
ok($t{writer_d}{rc} == 0 && $t{writer_d}{dur} < 1,
	"writer D of another customer did not wait ($t{writer_d}{dur} s < 1)");
is(query(q{SELECT sum(cost) FROM analytics.logs WHERE customer_identifier = 'z'}),
	'1.50', "z's logs sum to \$1.00 + A's \$0.50 (C's log not recorded)");
is(query(q{SELECT allowed, reason, period_spend = 1.50 FROM analytics.check_budget('z')}),
	'f|period_budget|t', "check_budget('z'): not allowed, period spend \$1.50 of \$1.20");
diag "   pgbench while the change of z waited ([launch, return]):";
pgbench_window($bench2, $t{zchange}{launch}, $t{zchange}{end}, 'part 2 pgbench');

diag sprintf('stall test: %.0f s', time - $start);
$node->stop;
done_testing();
