# Budget exactness under real concurrency: 8 pgbench clients insert $0.01
# logs of one customer with a $1.00 monthly budget, 240 attempts in all.
# Exactly 100 logs must be accepted (the 100th reaches the budget exactly,
# every later one finds the period spent) and every rejection must carry
# SQLSTATE UA001.  Each insert runs in a DO block that records the SQLSTATE
# of a rejection, so no pgbench client aborts.
use strict;
use warnings;

use AnalyticsTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = analytics_node('budget_stress', conf => 'max_connections = 30');

$node->safe_psql('postgres', q{
CREATE EXTENSION analytics;
SELECT analytics.upsert_customer('{"customer_identifier": "stress", "period_budget": 1.00}');
CREATE UNLOGGED TABLE stress_rejections (sqlstate text NOT NULL, message text);});

my $script = $node->basedir . '/insert.sql';
PostgreSQL::Test::Utils::append_to_file($script, <<'SQL');
DO $$ BEGIN INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('stress', 'gpt-4o', 0.01); EXCEPTION WHEN OTHERS THEN INSERT INTO stress_rejections VALUES (SQLSTATE, SQLERRM); END $$;
SQL

my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	[
		$node->installed_command('pgbench'), '-n', '-c', '8', '-j', '2', '-t', '30',
		'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$out, '2>', \$err, IPC::Run::timeout(120));
ok($ok, 'pgbench ran') or diag "$out$err";
diag $1 if $out =~ /^(number of transactions actually processed.*)$/m;

my ($accepted, $spent, $rejected, $ua001, $counter) = split /\|/, $node->safe_psql('postgres', q{
SELECT (SELECT count(*) FROM analytics.logs WHERE customer_identifier = 'stress'),
       (SELECT sum(cost) FROM analytics.logs WHERE customer_identifier = 'stress'),
       (SELECT count(*) FROM stress_rejections),
       (SELECT count(*) FROM stress_rejections WHERE sqlstate = 'UA001'),
       (SELECT sum(spend) FROM analytics.budget_counters WHERE customer_identifier = 'stress')});
diag "accepted=$accepted spent=$spent rejected=$rejected ua001=$ua001 counter=$counter";

is($accepted, '100',  'exactly 100 logs accepted');
is($spent,    '1.00', '$1.00 spent');
is($rejected, '140',  '140 rejections');
is($ua001, $rejected, 'every rejection carried UA001')
  or diag $node->safe_psql('postgres',
	'SELECT sqlstate, message, count(*) FROM stress_rejections GROUP BY 1, 2');
is($counter, '1.00', 'the budget counter equals the logs');

$node->stop;
done_testing();
