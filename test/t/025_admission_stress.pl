# Admission exactness under real concurrency: 16 pgbench clients admit
# requests of one customer at once.
#   - rate_limit 100, no budget: 320 attempts in well under a minute admit
#     exactly 100; every refusal carries UA004.
#   - a $1.00 monthly budget and $0.01 estimates: exactly 100 admissions;
#     every refusal carries UA001.
#   - settlement: every admitted request is settled by its log, whose real
#     cost is the estimate times a random factor (0.5 to 2); no settling
#     log is refused, and the period's spend stays within the budget plus
#     the sum of (real - estimate) of the settled admissions.
# Each call runs in a DO block that records the SQLSTATE of a refusal, so
# no pgbench client aborts.
use strict;
use warnings;

use AnalyticsTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = analytics_node('admission_stress', conf => 'max_connections = 40');

$node->safe_psql('postgres', q{
CREATE EXTENSION analytics;
SELECT analytics.upsert_customer('{"customer_identifier": "rated", "rate_limit": 100}');
SELECT analytics.upsert_customer('{"customer_identifier": "budgeted", "period_budget": 1.00}');
SELECT analytics.upsert_customer('{"customer_identifier": "settled", "period_budget": 1.00}');
CREATE UNLOGGED TABLE refusals (customer text NOT NULL, sqlstate text NOT NULL, message text);});

# run_pgbench NAME, SQL: 16 clients, 20 transactions each.
sub run_pgbench
{
	my ($name, $sql) = @_;
	my $script = $node->basedir . "/$name.sql";
	PostgreSQL::Test::Utils::append_to_file($script, $sql);
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(
		[
			$node->installed_command('pgbench'), '-n', '-c', '16', '-j', '2', '-t', '20',
			'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'
		],
		'>', \$out, '2>', \$err, IPC::Run::timeout(120));
	ok($ok, "pgbench $name ran") or diag "$out$err";
	diag "$name: $1" if $out =~ /^(number of transactions actually processed.*)$/m;
}

sub query { return $node->safe_psql('postgres', shift); }

# Rate limit.
my $t0 = query('SELECT clock_timestamp()');
run_pgbench('rated', <<'SQL');
DO $$ BEGIN PERFORM analytics.admit('rated', 0, 0); EXCEPTION WHEN OTHERS THEN INSERT INTO refusals VALUES ('rated', SQLSTATE, SQLERRM); END $$;
SQL
my ($admitted, $refused, $ua004, $span) = split /\|/, query(q{
SELECT (SELECT count(*) FROM analytics.admissions WHERE customer_identifier = 'rated'),
       (SELECT count(*) FROM refusals WHERE customer = 'rated'),
       (SELECT count(*) FROM refusals WHERE customer = 'rated' AND sqlstate = 'UA004'),
       (SELECT extract(epoch FROM max(created_at) - min(created_at)) < 60
          FROM analytics.admissions WHERE customer_identifier = 'rated')});
diag "rate limit: admitted=$admitted refused=$refused ua004=$ua004";
is($span, 't', 'the attempts took less than the 60 s window');
is($admitted, '100', 'rate_limit 100: exactly 100 admissions in the window');
is($refused, '220', '220 refusals');
is($ua004, $refused, 'every refusal carried UA004')
  or diag query("SELECT sqlstate, message, count(*) FROM refusals WHERE customer = 'rated' GROUP BY 1, 2");

# Budget.
run_pgbench('budgeted', <<'SQL');
DO $$ BEGIN PERFORM analytics.admit('budgeted', 0.01, 0); EXCEPTION WHEN OTHERS THEN INSERT INTO refusals VALUES ('budgeted', SQLSTATE, SQLERRM); END $$;
SQL
my ($b_admitted, $b_held, $b_refused, $b_ua001, $b_reserved) = split /\|/, query(q{
SELECT (SELECT count(*) FROM analytics.admissions WHERE customer_identifier = 'budgeted'),
       (SELECT sum(estimated_cost) FROM analytics.admissions WHERE customer_identifier = 'budgeted'),
       (SELECT count(*) FROM refusals WHERE customer = 'budgeted'),
       (SELECT count(*) FROM refusals WHERE customer = 'budgeted' AND sqlstate = 'UA001'),
       (SELECT reserved FROM analytics.budget_counters
         WHERE customer_identifier = 'budgeted' AND period_start <> '-infinity')});
diag "budget: admitted=$b_admitted held=$b_held refused=$b_refused ua001=$b_ua001 reserved=$b_reserved";
is($b_admitted, '100', '$1 budget, $0.01 estimates: exactly 100 admissions');
is($b_refused, '220', '220 refusals');
is($b_ua001, $b_refused, 'every refusal carried UA001')
  or diag query("SELECT sqlstate, message, count(*) FROM refusals WHERE customer = 'budgeted' GROUP BY 1, 2");
is($b_reserved, $b_held, 'the counter holds the estimates of the open admissions');

# Settlement.
run_pgbench('settled', <<'SQL');
DO $$
DECLARE
    a bigint;
BEGIN
    a := analytics.admit('settled', 0.01, 0);
    BEGIN
        INSERT INTO analytics.logs (customer_identifier, model, cost, admission_id)
        VALUES ('settled', 'gpt-4o', round((0.005 + random() * 0.015)::numeric, 6), a);
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO refusals VALUES ('settled-log', SQLSTATE, SQLERRM);
    END;
EXCEPTION WHEN OTHERS THEN
    INSERT INTO refusals VALUES ('settled', SQLSTATE, SQLERRM);
END $$;
SQL
my ($s_admitted, $s_logs, $s_open, $s_log_refused, $s_spend, $s_over, $s_bound, $s_counter, $s_reserved) =
  split /\|/, query(q{
SELECT (SELECT count(*) FROM analytics.admissions WHERE customer_identifier = 'settled'),
       (SELECT count(*) FROM analytics.logs WHERE customer_identifier = 'settled'),
       (SELECT count(*) FROM analytics.admissions WHERE customer_identifier = 'settled' AND settled_by IS NULL),
       (SELECT count(*) FROM refusals WHERE customer = 'settled-log'),
       (SELECT sum(cost) FROM analytics.logs WHERE customer_identifier = 'settled'),
       (SELECT sum(greatest(l.cost - a.estimated_cost, 0))
          FROM analytics.logs l JOIN analytics.admissions a ON a.id = l.admission_id
         WHERE l.customer_identifier = 'settled'),
       (SELECT sum(cost) <= 1.00 + (SELECT sum(greatest(l.cost - a.estimated_cost, 0))
                                      FROM analytics.logs l JOIN analytics.admissions a ON a.id = l.admission_id
                                     WHERE l.customer_identifier = 'settled')
          FROM analytics.logs WHERE customer_identifier = 'settled'),
       (SELECT spend FROM analytics.budget_counters
         WHERE customer_identifier = 'settled' AND period_start <> '-infinity'),
       (SELECT reserved FROM analytics.budget_counters
         WHERE customer_identifier = 'settled' AND period_start <> '-infinity')});
diag "settlement: admitted=$s_admitted logs=$s_logs open=$s_open spend=$s_spend over_estimates=$s_over";
is($s_log_refused, '0', 'no settling log was refused')
  or diag query("SELECT sqlstate, message, count(*) FROM refusals WHERE customer = 'settled-log' GROUP BY 1, 2");
is($s_logs, $s_admitted, 'every admission was settled by its log');
is($s_open, '0', 'no admission left open');
is($s_bound, 't', 'spend within the budget plus the overruns of the estimates');
is($s_counter, $s_spend, 'the counter equals the logs');
cmp_ok($s_reserved, '==', 0, 'nothing held once all are settled');
my $refused_other = query(q{SELECT count(*) FROM refusals WHERE customer = 'settled' AND sqlstate <> 'UA001'});
is($refused_other, '0', 'admissions were refused only with UA001');

$node->stop;
done_testing();
