# Scale-out on Citus (SPEC §9), on a coordinator and two workers on
# loopback: analytics.distribute() (idempotent; refused without Citus),
# then through the coordinator every ingest path, writes through a worker,
# logs without a customer and ids unique across the cluster; idempotent
# logging (a recorded request_id, a concurrent pair, racing sessions); budgets exact
# with 8 sessions spread over the three nodes; every view and read function
# equal to the same GROUP BY over the distributed raw logs before any fold,
# after the nodes' workers folded, after a worker node was killed with
# SIGKILL mid-ingest and restarted (every acknowledged log present once),
# after delete_customer, set_timezone and purge_logs; the first page of the
# users view for every sort field equal to the raw one.  Skipped, saying why,
# when Citus is not installed.  Bounded to 4 minutes.
use strict;
use warnings;

use AnalyticsCitus;
use AnalyticsTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $missing = citus_missing();
plan skip_all => "Citus not installed: $missing (install Citus 13.2 for PostgreSQL 15 to run it)"
  if defined $missing;

my $start = time;
my $limit = 240;

note 'without Citus, distribute() refuses';
my $plain = analytics_node('plain');
$plain->safe_psql('postgres', 'CREATE EXTENSION analytics');
my ($ret, $out) = psql_verbose($plain, 'postgres', 'SELECT analytics.distribute()');
isnt($ret, 0, 'distribute() fails on a node without Citus');
like($out, qr/citus/i, 'and its error names Citus') or diag $out;
$plain->stop;

# The folds wait until the views were compared with nothing folded.
my ($coord, @workers) = citus_cluster('citus', conf => 'analytics.worker_enabled = off');
my @nodes = ($coord, @workers);
my $dir = $coord->basedir;

# query(SQL): the result of SQL through the coordinator, dying on error.
sub query { return $coord->safe_psql('postgres', $_[0]); }

# logs_of(CUSTOMER): the number of logs of CUSTOMER.
sub logs_of
{
	return query("SELECT count(*) FROM analytics.logs WHERE customer_identifier = '$_[0]'");
}

# check_views(WHEN, ZONE, PURGED): one test per view and read function.
sub check_views
{
	my ($when, $zone, $purged) = @_;
	for my $r (view_mismatches($coord, $zone // 'UTC', $purged))
	{
		my ($name, $count, $detail) = @$r;
		is($count, '0', "$when: $name equals the raw GROUP BY") or diag $detail;
	}
	return;
}

# check_pages(WHEN, ZONE): the first page (50 rows) of analytics.users for
# every sort field of the Users page, both ways, ties to
# customer_identifier, equals the same page of a raw GROUP BY over the
# distributed logs (active_days: distinct days in ZONE).  Before any purge:
# the raw side reads only the logs still stored.
sub check_pages
{
	my ($when, $zone) = @_;
	my %raw = (
		cost         => 'coalesce(sum(l.cost), 0)',
		requests     => 'count(l.id)',
		total_tokens => 'coalesce(sum(l.total_tokens), 0)',
		last_active  => 'max(l.created_at)',
		first_seen   => 'min(l.created_at)',
		active_days  => "count(DISTINCT (l.created_at AT TIME ZONE '$zone')::date)");
	my @pages = map { my $f = $_; map { [ $f, $_ ] } qw(ASC DESC) } sort keys %raw;
	# Each side in one psql call, the pages apart by a line "page".
	my @view = split /^page\n/m, query(join(
		"\n",
		map { "SELECT 'page'; SELECT customer_identifier FROM analytics.users ORDER BY $_->[0] $_->[1], customer_identifier LIMIT 50;" }
		  @pages));
	my @raw = split /^page\n/m, query(join(
		"\n",
		map {
			"SELECT 'page'; SELECT c.customer_identifier FROM analytics.customers c
			   LEFT JOIN analytics.logs l ON l.customer_identifier = c.customer_identifier
			  GROUP BY c.customer_identifier ORDER BY $raw{$_->[0]} $_->[1], c.customer_identifier LIMIT 50;"
		} @pages));
	shift @view;
	shift @raw;
	is(scalar(@view) . ' ' . scalar(@raw), scalar(@pages) . ' ' . scalar(@pages), "$when: every users page read");
	for my $k (0 .. $#pages)
	{
		is($view[$k], $raw[$k], "$when: the users page by $pages[$k][0] $pages[$k][1] equals the raw GROUP BY");
	}
	return;
}

# wait_folded(WHEN): wait until no node has logs pending, then check that
# the rollup counts every log with a customer once.
sub wait_folded
{
	my ($when) = @_;
	ok(wait_until($coord, 'postgres', 'SELECT bool_and(logs_pending = 0) FROM analytics.status', 60),
		"$when: the nodes' workers folded every log")
	  or diag query('SELECT * FROM analytics.status');
	is( query(q{SELECT (SELECT coalesce(sum(requests), 0) FROM analytics.usage_daily)
	                 - (SELECT count(*) FROM analytics.logs WHERE customer_identifier <> '')}),
		'0', "$when: usage_daily counts every log once");
	return;
}

# ids_unique(WHEN): no id twice in logs.
sub ids_unique
{
	is(query('SELECT count(*) - count(DISTINCT id) FROM analytics.logs'),
		'0', "$_[0]: ids are unique across the cluster");
	return;
}

# copy_in(ROWS): COPY of ROWS (customer, model, prompt and completion
# tokens) into logs from psql's stdin through the coordinator; returns
# (exit status, stderr).
sub copy_in
{
	my ($rows) = @_;
	my ($stdout, $stderr) = ('', '');
	IPC::Run::run(
		[
			$coord->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=1', '-h', $coord->host,
			'-p', $coord->port, '-d', 'postgres', '-c',
			'COPY analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens) FROM STDIN'
		],
		'<', \$rows, '>', \$stdout, '2>', \$stderr);
	return ($? >> 8, $stderr);
}

note 'a database with customers and logs before distribute()';
query(q{INSERT INTO analytics.customers (customer_identifier) VALUES ('pre_no_logs')});
query(q{INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('pre_logged', 'gpt-4o', 0.25), ('pre_logged', 'gpt-4o', 0.5)});
query('SELECT analytics.rollup_now()');
query(q{INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('pre_logged', 'o3-mini', 1)});

note 'distribute()';
my $placement = q{SELECT string_agg(format('%s %s %s %s', p.logicalrelid, p.partmethod, p.colocationid,
                                      (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid)),
                               ', ' ORDER BY p.logicalrelid::text)
                    FROM pg_dist_partition p
                   WHERE p.logicalrelid::text LIKE 'analytics.%'};
($ret, $out) = psql_verbose($coord, 'postgres', 'SELECT analytics.distribute()');
unless (is($ret, 0, 'distribute() succeeds on the coordinator'))
{
	diag $out;
	done_testing();
	exit;
}
is( query(q{SELECT string_agg(format('%s %s %s', logicalrelid, partmethod, column_to_column_name(logicalrelid, partkey)), ', ' ORDER BY logicalrelid::text)
              FROM pg_dist_partition
             WHERE logicalrelid IN ('analytics.customers'::regclass, 'analytics.logs'::regclass)}),
	'analytics.customers h customer_identifier, analytics.logs h customer_identifier',
	'customers and logs are distributed by customer_identifier');
is( query(q{SELECT count(DISTINCT colocationid) FROM pg_dist_partition
             WHERE logicalrelid IN ('analytics.customers'::regclass, 'analytics.logs'::regclass)}),
	'1', 'and co-located');
is(query(q{SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'analytics.logs'::regclass}),
	'32', 'logs has 32 shards (the default shard_count)');
is( query(q{SELECT string_agg(format('%s %s %s', u.customer_identifier, u.requests, u.cost), ', '
                               ORDER BY u.customer_identifier)
              FROM analytics.users u WHERE u.customer_identifier LIKE 'pre%'}),
	'pre_logged 3 1.75, pre_no_logs 0 0',
	'the customers and logs from before distribute() are in users (folded, pending, none)');
is( query(q{SELECT count(*) FROM analytics.usage_customer WHERE customer_identifier LIKE 'pre%'}),
	'2', 'and each has one usage_customer row');
my $placed = query($placement);
($ret, $out) = psql_verbose($coord, 'postgres', 'SELECT analytics.distribute()');
is($ret, 0, 'a second distribute() succeeds') or diag $out;
is(query($placement), $placed, 'and changes nothing');

note 'every ingest path through the coordinator';
my $id = query(q{INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('path_insert', 'gpt-4o', 0.01) RETURNING id});
is( query("SELECT count(*) FROM analytics.logs WHERE id = $id AND customer_identifier = 'path_insert'"),
	'1', 'plain INSERT: the log is recorded');
is(query(q{SELECT count(*) FROM analytics.customers WHERE customer_identifier = 'path_insert'}),
	'1', 'plain INSERT: its first log created the customer');

query(q{INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens)
        SELECT 'path_multi_' || g, 'gpt-4o-mini', 100 * g, 10 * g FROM generate_series(1, 8) g});
is( query(q{SELECT count(*) || ' ' || count(DISTINCT l.customer_identifier) || ' ' || count(c.customer_identifier)
              FROM analytics.logs l LEFT JOIN analytics.customers c USING (customer_identifier)
             WHERE l.customer_identifier LIKE 'path\_multi\_%'}),
	'8 8 8', 'multi-row INSERT over 8 customers: every log recorded, every customer created');

my @copied = map { "path_copy_" . ($_ % 4) . "\tgpt-4o\t$_\t7\n" } 1 .. 20;
($ret, $out) = copy_in(join '', @copied);
is($ret, 0, 'COPY succeeds') or diag $out;
is(query(q{SELECT count(*) FROM analytics.logs WHERE customer_identifier LIKE 'path\_copy\_%'}),
	scalar @copied, 'COPY: every row recorded');

for my $type (qw(text json jsonb))
{
	$id = query(qq{SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "path_ingest_$type", "usage": {"prompt_tokens": 12, "completion_tokens": 3}, "latency": 0.5}'::$type)});
	is( query("SELECT count(*) FROM analytics.logs WHERE id = $id AND customer_identifier = 'path_ingest_$type'"),
		'1', "ingest($type): the log is recorded under the id it returned");
}
$id = query(q{SELECT analytics.ingest_openai(
    '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me a long story"}],
      "customer_params": {"customer_identifier": "path_openai", "name": "Hendrix Liu", "email": "hendrix@example.com"}}',
    '{"model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 9, "completion_tokens": 120},
      "choices": [{"message": {"role": "assistant", "content": "Once upon a time"}}]}', 1.25)});
is( query("SELECT count(*) FROM analytics.logs WHERE id = $id AND customer_identifier = 'path_openai'"),
	'1', 'ingest_openai: the log is recorded under the id it returned');
is(query(q{SELECT name || ' ' || email FROM analytics.customers WHERE customer_identifier = 'path_openai'}),
	'Hendrix Liu hendrix@example.com', 'ingest_openai: customer_params upserted the customer');
# Prompt caching (SPEC section 12): an OpenAI log with cached tokens and an
# Anthropic one with cache reads and writes; the users view's cached_tokens
# is compared with the raw sum by check_views.
$id = query(q{SELECT analytics.ingest_openai(
    '{"model": "gpt-4o", "user": "path_cached", "messages": [{"role": "user", "content": "Hello!"}]}',
    '{"object": "chat.completion", "model": "gpt-4o-2024-08-06",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1920}}}')});
is(query("SELECT prompt_tokens || ' ' || cached_tokens FROM analytics.logs WHERE id = $id"),
	'2006 1920', 'ingest_openai: the cached tokens are recorded');
$id = query(q{SELECT analytics.ingest_anthropic(
    '{"model": "claude-sonnet-4-20250514", "max_tokens": 1024, "messages": [{"role": "user", "content": "Again"}],
      "metadata": {"user_id": "path_cached"}}',
    '{"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
      "content": [{"type": "text", "text": "Again"}], "stop_reason": "end_turn", "stop_sequence": null,
      "usage": {"input_tokens": 21, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 188086, "output_tokens": 393}}')});
is( query("SELECT prompt_tokens || ' ' || cached_tokens || ' ' || cache_write_tokens FROM analytics.logs WHERE id = $id"),
	'188207 188086 100', 'ingest_anthropic: prompt_tokens adds the cache reads and writes');
is(query(q{SELECT cached_tokens FROM analytics.users WHERE customer_identifier = 'path_cached'}),
	'190006', 'users: the cached tokens of both logs');
# The Users page's top_models, cache_hit_rate and average_monthly_cost
# (compared with the raw logs by check_views): seven models over five
# months, two of them tied in cost and requests (broken by name); the
# first five by cost are kept.
query(q{INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cached_tokens,
                                    cost, created_at)
        SELECT 'path_models', 'model-' || k, 1000, 10, 100 * k, (ARRAY[0.7, 0.6, 0.6, 0.4, 0.3, 0.2, 0.1])[k],
               now() - (k - 1) * interval '30 days'
          FROM generate_series(1, 7) k});
is(query(q{SELECT top_models FROM analytics.users WHERE customer_identifier = 'path_models'}),
	'[{"cost": 0.7, "model": "model-1", "requests": 1}, {"cost": 0.6, "model": "model-2", "requests": 1}, '
	  . '{"cost": 0.6, "model": "model-3", "requests": 1}, {"cost": 0.4, "model": "model-4", "requests": 1}, '
	  . '{"cost": 0.3, "model": "model-5", "requests": 1}]',
	'users: top_models on the cluster, by cost, ties by name, five of seven');
my $batch = query(q{SELECT analytics.ingest_batch(
    '{"model": "gpt-4o", "customer_identifier": "path_batch_1", "cost": 0.02}
{"model": "gpt-4o", "customer_identifier": "path_batch_2", "cost": 0.03}
{"model": "gpt-4o", "customer_params": {"customer_identifier": "path_batch_3", "name": "Batch"}, "cost": 0.04}')});
is($batch, '3', 'ingest_batch returns the number of payloads');
is(query(q{SELECT count(*) FROM analytics.logs WHERE customer_identifier LIKE 'path\_batch\_%'}),
	$batch, 'ingest_batch: every payload recorded');

note 'writes through the workers';
$id = $workers[0]->safe_psql('postgres',
	q{INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('path_worker', 'gpt-4o', 0.05) RETURNING id});
is( query("SELECT count(*) FROM analytics.logs WHERE id = $id AND customer_identifier = 'path_worker'"),
	'1', 'INSERT through a worker: the coordinator sees the log');
$id = $workers[1]->safe_psql('postgres',
	q{SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "path_worker_ingest", "cost": 0.06}')});
is( query("SELECT count(*) FROM analytics.logs WHERE id = $id AND customer_identifier = 'path_worker_ingest'"),
	'1', 'ingest() through a worker: the coordinator sees the log');

note 'logs without a customer';
# Each through a path of its own; the id it returned must name a log whose
# Logs without a customer: Citus routes no NULL, so on a cluster they are
# stored under '' (docs/scaling-out.md), in logs and in logs_with_customer.
my @without = (
	[ 'INSERT', $coord, q{INSERT INTO analytics.logs (model, cost) VALUES ('gpt-4o', 0.07) RETURNING id} ],
	[ 'INSERT of a null customer', $coord, q{INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES (NULL, 'gpt-4o', 0.06) RETURNING id} ],
	[ 'ingest()', $coord, q{SELECT analytics.ingest('{"model": "gpt-4o", "cost": 0.08}')} ],
	[ 'INSERT through a worker', $workers[0], q{INSERT INTO analytics.logs (model, cost) VALUES ('gpt-4o', 0.09) RETURNING id} ]);
my @without_ids;
for my $w (@without)
{
	my ($path, $node, $sql) = @$w;
	$id = $node->safe_psql('postgres', $sql);
	push @without_ids, $id;
	is(query("SELECT count(*) FROM analytics.logs WHERE id = $id AND customer_identifier = ''"),
		'1', "$path without a customer is recorded without one ('')");
}
my $no_customer_logs = q{SELECT count(*) FROM analytics.logs WHERE customer_identifier = ''};
my $before_copy = query($no_customer_logs);
($ret, $out) = copy_in("\tgpt-4o\t5\t5\npath_copy_0\tgpt-4o\t5\t5\n");
is($ret, 0, 'COPY with a row without a customer succeeds') or diag $out;
is(query($no_customer_logs), $before_copy + 1, 'COPY: the row without a customer is recorded without one');
($ret, $out) = copy_in("\\N\tgpt-4o\t5\t5\n");
isnt($ret, 0, 'COPY of a null customer is refused (Citus routes no NULL)');
is(query($no_customer_logs), $before_copy + 1, 'and records nothing');
is(query(q{SELECT count(*) FROM analytics.customers WHERE customer_identifier = ''}),
	'0', 'no customer is created for them');
is( query(q{SELECT count(*) FROM analytics.logs_with_customer WHERE customer_identifier = '' AND name IS NULL AND id IN (}
		  . join(', ', @without_ids) . ')'),
	scalar @without_ids, 'logs_with_customer shows them without a customer');
note 'idempotent logging (request_id)';
# A recorded request records nothing more, through every path; ingest
# returns the existing id (on a cluster the trigger skips the row on the
# shard's node, and the coordinator reads the id back).
$id = query(q{INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
              VALUES ('req_cust', 'gpt-4o', 0.02, 'req-1') RETURNING id});
is( query(q{INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
            VALUES ('req_cust', 'gpt-4o', 0.03, 'req-1') RETURNING id}),
	'', 'INSERT of a recorded request through the coordinator inserts nothing');
is( query(q{SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "req_cust", "cost": 0.04, "request_id": "req-1"}')}),
	$id, 'ingest() of a request recorded by INSERT returns its id');
my $req2 = query(q{SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "req_cust", "cost": 0.05, "request_id": "req-2"}'::jsonb)});
is( query(q{SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "req_cust", "cost": 0.05, "request_id": "req-2"}')}),
	$req2, 'ingest() retried returns the first id');
is( query(q{SELECT analytics.ingest_openai('{"model": "gpt-4o", "user": "req_cust", "request_id": "req-2"}',
            '{"model": "gpt-4o", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}')}),
	$req2, 'ingest_openai() with the request_id in the request body returns it too');
is( $workers[0]->safe_psql('postgres',
		q{SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "req_cust", "cost": 0.05, "request_id": "req-2"}')}),
	$req2, 'ingest() through a worker returns it too');
is( query(q{SELECT analytics.ingest_batch('{"model": "gpt-4o", "customer_identifier": "req_cust", "cost": 0.06, "request_id": "req-3"}
{"model": "gpt-4o", "customer_identifier": "req_cust", "cost": 0.07, "request_id": "req-3"}
{"model": "gpt-4o", "customer_identifier": "req_cust", "cost": 0.08, "request_id": "req-1"}')}),
	'1', 'ingest_batch() counts only the request it recorded');
my $req_nc = query(q{SELECT analytics.ingest('{"model": "gpt-4o", "cost": 0.01, "request_id": "req-nc"}')});
is( query(q{SELECT analytics.ingest('{"model": "gpt-4o", "cost": 0.01, "request_id": "req-nc"}')}),
	$req_nc, 'ingest() without a customer (stored under \'\') returns the first id');
is( query(q{SELECT string_agg(request_id || ':' || n || ':' || cost, ' ' ORDER BY request_id)
              FROM (SELECT request_id, count(*) AS n, sum(cost) AS cost FROM analytics.logs
                     WHERE request_id LIKE 'req-%' GROUP BY 1) r}),
	'req-1:1:0.02 req-2:1:0.05 req-3:1:0.06 req-nc:1:0.01',
	'one log per request, the first one recorded');

# A concurrent pair: the first holds its log uncommitted for 2 s, the second
# (through a worker) records the same request meanwhile: it waits, then
# returns the first's id.
my @pair = (
	[ 'pair_first', $coord,
		qq{BEGIN;\nSELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "pair_cust", "cost": 0.1, "request_id": "pair-1"}');\nSELECT pg_sleep(2);\nCOMMIT;\n} ],
	[ 'pair_second', $workers[1],
		qq{SELECT pg_sleep(0.5);\nSELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "pair_cust", "cost": 0.2, "request_id": "pair-1"}');\n} ]);
wait_timed(map { run_timed($_->[1], $dir, $_->[0], undef, 'postgres', $_->[2]) } @pair);
my @pair_ids = map { my $r = read_timed($dir, $_->[0]); is($r->{rc}, 0, "$_->[0] succeeds") or diag $r->{out}; ($r->{out} =~ /^(\d+)$/m)[0] } @pair;
my $pair_log = query(q{SELECT string_agg(id || ':' || cost, ' ') FROM analytics.logs WHERE request_id = 'pair-1'});
is($pair_log, "$pair_ids[0]:0.1", 'a concurrent pair records one log, the first');
is($pair_ids[1], $pair_ids[0], 'and the second session returns its id');
cmp_ok(read_timed($dir, 'pair_second')->{dur}, '>=', 1.5, 'after waiting for the first to commit');

# Six sessions on the three nodes record the same 20 requests of a
# budgeted and an unbudgeted customer at once: one log each, every session
# returns its id, the budget counter holds each cost once.
query(q{SELECT analytics.upsert_customer('{"customer_identifier": "race_budget", "period_budget": 1000}')});
my $race_sql = join '', map {
	my $c = $_ % 2 ? 'race_budget' : 'race_plain';
	"SELECT '$_ ' || analytics.ingest('{\"model\": \"gpt-4o\", \"customer_identifier\": \"$c\", \"cost\": 0.01, \"request_id\": \"race-$_\"}');\n"
} 1 .. 20;
my @racers = map { [ "race_$_", $nodes[ $_ % 3 ] ] } 0 .. 5;
wait_timed(map { run_timed($_->[1], $dir, $_->[0], undef, 'postgres', $race_sql) } @racers);
my %race_ids;
for my $s (@racers)
{
	my $r = read_timed($dir, $s->[0]);
	is($r->{rc}, 0, "$s->[0] succeeds") or diag $r->{out};
	$race_ids{$1}{$2} = 1 while $r->{out} =~ /^(\d+) (\d+)$/mg;
}
my %race_logs = map { split /\|/ } split /\n/,
  query(q{SELECT substr(request_id, 6), string_agg(id::text, ',') FROM analytics.logs
           WHERE request_id LIKE 'race-%' GROUP BY 1});
is(scalar(grep { $race_logs{$_} =~ /^\d+$/ } 1 .. 20), 20, 'racing sessions: one log per request');
is( scalar(grep { join(',', sort keys %{ $race_ids{$_} }) eq ($race_logs{$_} // '') } 1 .. 20),
	20, 'every session returned that log\'s id for each request');
is( query(q{SELECT sum(spend) = (SELECT sum(cost) FROM analytics.logs WHERE customer_identifier = 'race_budget')
              FROM analytics.budget_counters WHERE customer_identifier = 'race_budget' AND period_start <> '-infinity'}),
	't', 'the budget counter holds each recorded cost once');
ids_unique('after every ingest path');

note 'budgets exact with 8 sessions on the three nodes';
# Each session alternates a $0.01 log of a customer with a period budget
# and one of a customer with a total budget, 30 of each, every insert its
# own transaction; a rejection leaves its SQLSTATE in the session output.
query(q{SELECT analytics.upsert_customer('{"customer_identifier": "stress_period", "period_budget": 1.00}');
        SELECT analytics.upsert_customer('{"customer_identifier": "stress_total", "total_budget": 0.50}')});
my $attempts = 30;
my $stress_sql = "\\set ON_ERROR_STOP 0\n" . join '', map {
	"INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('stress_period', 'gpt-4o', 0.01);\n"
	  . "INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('stress_total', 'gpt-4o', 0.01);\n"
} 1 .. $attempts;
my @sessions = map { [ "stress_$_", $nodes[ $_ % 3 ] ] } 0 .. 7;
wait_timed(map { run_timed($_->[1], $dir, $_->[0], undef, 'postgres', $stress_sql) } @sessions);
my %refused;
for my $s (@sessions)
{
	my $r = read_timed($dir, $s->[0]);
	$refused{$_}++ for $r->{out} =~ /ERROR:\s+(\w{5}):/g;
}
diag 'refusals by SQLSTATE: ' . join(', ', map { "$_ $refused{$_}" } sort keys %refused);
for my $b ([ 'stress_period', 'period_budget', 'UA001' ], [ 'stress_total', 'total_budget', 'UA002' ])
{
	my ($c, $column, $sqlstate) = @$b;
	# The log that reaches the budget is accepted, none after it.
	my $expected = query("SELECT ceil($column / 0.01) FROM analytics.customers WHERE customer_identifier = '$c'");
	is(logs_of($c), $expected, "$c: exactly ceil($column / cost) = $expected logs accepted");
	is($refused{$sqlstate} // 0, 8 * $attempts - $expected, "$c: every other attempt refused with $sqlstate");
}
is(join(',', grep { !/^UA00[12]$/ } sort keys %refused), '', 'no refusal with another SQLSTATE');

note 'admissions exact with 8 sessions on the three nodes';
# Each session admits 30 requests of a customer with a $0.50 period budget
# ($0.01 estimates) and 30 of one with a rate_limit of 40, every call its own
# transaction: exactly 50 and 40 admissions.  Then every budget admission is
# settled by its log, written through the node of a session, at twice its
# estimate: none is refused, and the counter holds the logs and nothing more.
query(q{SELECT analytics.upsert_customer('{"customer_identifier": "adm_budget", "period_budget": 0.50}');
        SELECT analytics.upsert_customer('{"customer_identifier": "adm_rate", "rate_limit": 40}')});
my $admit_sql = "\\set ON_ERROR_STOP 0\n" . join '', map {
	"SELECT analytics.admit('adm_budget', 0.01);\nSELECT analytics.admit('adm_rate');\n"
} 1 .. $attempts;
wait_timed(map { run_timed($_->[1], $dir, "admit_$_->[0]", undef, 'postgres', $admit_sql) } @sessions);
my %admit_refused;
for my $s (@sessions)
{
	my $r = read_timed($dir, "admit_$s->[0]");
	$admit_refused{$_}++ for $r->{out} =~ /ERROR:\s+(\w{5}):/g;
}
diag 'admission refusals by SQLSTATE: ' . join(', ', map { "$_ $admit_refused{$_}" } sort keys %admit_refused);
is(query(q{SELECT count(*) FROM analytics.admissions WHERE customer_identifier = 'adm_budget'}),
	query(q{SELECT ceil(period_budget / 0.01) FROM analytics.customers WHERE customer_identifier = 'adm_budget'}),
	'adm_budget: exactly ceil(period_budget / estimate) admissions');
is(query(q{SELECT count(*) FROM analytics.admissions WHERE customer_identifier = 'adm_rate'}),
	query(q{SELECT rate_limit FROM analytics.customers WHERE customer_identifier = 'adm_rate'}),
	'adm_rate: exactly rate_limit admissions in the window');
is(join(',', map { "$_=$admit_refused{$_}" } sort keys %admit_refused),
	'UA001=' . (8 * $attempts - 50) . ',UA004=' . (8 * $attempts - 40),
	'every other admission refused with UA001 or UA004');
my @admissions = split /\n/, query(q{SELECT id FROM analytics.admissions WHERE customer_identifier = 'adm_budget' ORDER BY id});
my %settle_sql;
for my $i (0 .. $#admissions)
{
	$settle_sql{ $i % 8 } .= "INSERT INTO analytics.logs (customer_identifier, model, cost, admission_id) "
	  . "VALUES ('adm_budget', 'gpt-4o', 0.02, $admissions[$i]);\n";
}
wait_timed(map { run_timed($sessions[$_][1], $dir, "settle_$_", undef, 'postgres', "\\set ON_ERROR_STOP 0\n$settle_sql{$_}") } keys %settle_sql);
my $settle_errors = join '', map { (read_timed($dir, "settle_$_")->{out} =~ /(ERROR:.*)/g) } keys %settle_sql;
is($settle_errors, '', 'no settling log refused');
is(query(q{SELECT count(*) || ' ' || sum(cost) FROM analytics.logs WHERE customer_identifier = 'adm_budget'}),
	'50 1.00', 'every admission settled by its log, at its real cost');
is(query(q{SELECT spend || ' ' || (reserved = 0) FROM analytics.budget_counters
            WHERE customer_identifier = 'adm_budget' AND period_start <> '-infinity'}),
	'1.00 true', 'the counter holds the logs, no estimate left');
is(query(q{SELECT allowed || ' ' || reason || ' ' || open_admissions FROM analytics.check_budget('adm_budget')}),
	'false period_budget 0', 'check_budget() on the cluster');

note 'views with nothing folded';
# 3,000 logs over 13 customers and 3 days, cost given or priced.
my $bulk_sql = q{INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost,
                                             latency, time_to_first_token, status_code, created_at)
SELECT 'c' || (g % 13), (ARRAY['gpt-4o', 'gpt-4o-mini', 'other'])[1 + g % 3], g % 500, g % 70,
       CASE WHEN g % 2 = 0 THEN (g % 7) / 100.0 END, CASE WHEN g % 4 <> 0 THEN (g % 9) / 3.0 END,
       CASE WHEN g % 5 <> 0 THEN (g % 11) / 10.0 END, CASE WHEN g % 17 = 0 THEN 500 ELSE 200 END,
       now() - (g % 72) * interval '1 hour' - (g % 60) * interval '1 minute'
  FROM generate_series(1, 3000) g};
query(q{SELECT analytics.upsert_customer('{"customer_identifier": "c1", "name": "One", "markup_percentage": 10}')});
query($bulk_sql);
is(query(q{SELECT count(*) FROM analytics.usage_daily WHERE customer_identifier NOT LIKE 'pre%'}), '0',
	'nothing is folded yet (but the logs from before distribute())');
check_views('nothing folded');
check_pages('nothing folded', 'UTC');

note 'views after the folds';
for my $node (@nodes)
{
	$node->append_conf('postgresql.conf', 'analytics.worker_enabled = on');
	$node->reload;
}
wait_folded('after the folds');
check_views('after the folds');

note 'budget alerts reach a listener on the coordinator';
# Six customers, $1.00 a period and $2.00 in all, thresholds 50% and 100%:
# two logs of $0.60 each record period 50% (0.6), period 100% and total 50%
# (1.2).  Customers 1-2 are written through the coordinator, 3-4 through
# worker 1, 5-6 through worker 2 (each routed to its shard's node); a
# crossing log rolled back records nothing; blocking customer 1 and creating
# customer 7 blocked record one more each: 20 events, each received once by
# a listener on the coordinator.
query(q{SELECT analytics.upsert_customer(jsonb_build_object('customer_identifier', 'alert_' || n,
        'period_budget', 1, 'total_budget', 2, 'alert_thresholds', '[50, 100]'::jsonb))
          FROM generate_series(1, 6) n});
my $listener = listen_start($coord, 'postgres', 'analytics_budget');
my @writer_of = (undef, $coord, $coord, $workers[0], $workers[0], $workers[1], $workers[1]);
for my $n (1 .. 6)
{
	$writer_of[$n]->safe_psql('postgres', qq{
BEGIN;
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('alert_$n', 'gpt-4o', 0.6);
ROLLBACK;
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('alert_$n', 'gpt-4o', 0.6);
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('alert_$n', 'gpt-4o', 0.6);});
}
query(q{UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'alert_1'});
query(q{INSERT INTO analytics.customers (customer_identifier, blocked) VALUES ('alert_7', true)});
my @alert_payloads = listen_payloads($listener, 20, 60);
usleep(1_500_000);    # a duplicate would come with the next passes
@alert_payloads = listen_payloads($listener, 21, 1);
listen_stop($listener);
my $alert_values = join(",\n", map { "(\$p\$$_\$p\$)" } @alert_payloads) || '(NULL)';
query(qq{CREATE TABLE public.alerts_received (payload jsonb);
INSERT INTO public.alerts_received VALUES $alert_values});
is(scalar @alert_payloads, 20, 'the listener on the coordinator received 20 notifications');
is( query(q{SELECT count(*) || ' ' || count(*) FILTER (WHERE notified)
              FROM analytics.budget_events WHERE customer_identifier LIKE 'alert\_%'}),
	'20 20', '20 events recorded, all sent');
is( query(q{SELECT string_agg(format('%s %s %s %s %s', customer_identifier, kind, threshold, spend, budget), ','
                              ORDER BY customer_identifier, kind, threshold)
              FROM analytics.budget_events WHERE customer_identifier LIKE 'alert\_%'}),
	join(',', 'alert_1 blocked   ', (map { ("alert_$_ period_threshold 50 0.6 1", "alert_$_ period_threshold 100 1.2 1",
			"alert_$_ total_threshold 50 1.2 2") } 1 .. 6), 'alert_7 blocked   '),
	'the events are the thresholds the logs crossed, and the block');
is( query(q{WITH e AS (SELECT to_jsonb(e) - 'notified' - 'created_at' AS j, created_at
                         FROM analytics.budget_events e WHERE customer_identifier LIKE 'alert\_%'),
                 r AS (SELECT payload - 'created_at' AS j, (payload->>'created_at')::timestamptz AS created_at
                         FROM public.alerts_received)
            SELECT (SELECT count(*) FROM (SELECT * FROM e EXCEPT ALL SELECT * FROM r) d)
                 + (SELECT count(*) FROM (SELECT * FROM r EXCEPT ALL SELECT * FROM e) d)}),
	'0', 'each notification carries its row, exactly once');

note 'a worker node killed with SIGKILL mid-ingest';
# Three sessions through the coordinator, each statement autocommitted:
# a single-row insert and a 4-row insert over customers on both workers
# (a 2PC), each row tagged; a tag printed was acknowledged.
my $stop = "$dir/stop_writers";
my @writers = map {
	my $k = $_;
	IPC::Run::start(
		[
			'bash', '-c',
			'i=0; while [ ! -e "$1" ]; do i=$((i + 1)); '
			  . q{printf "INSERT INTO analytics.logs (customer_identifier, model, cost, custom_identifier) VALUES ('crash_%d', 'gpt-4o', 0.001, 'crash-%d-%d-0') RETURNING custom_identifier;\n" $(( (i * 7 + $2) % 20 )) $2 $i; }
			  . q{printf "INSERT INTO analytics.logs (customer_identifier, model, cost, custom_identifier) SELECT 'crash_' || ((%d + g * 5) %% 20), 'gpt-4o-mini', 0.002, 'crash-%d-%d-' || g FROM generate_series(1, 4) g RETURNING custom_identifier;\n" $i $2 $i; }
			  . 'done | "${@:3}"',
			'writer', $stop, $k,
			$coord->installed_command('psql'), '-XAtq', '-h', $coord->host, '-p', $coord->port, '-d', 'postgres'
		],
		'>', "$dir/writer_$k.out", '2>', "$dir/writer_$k.err");
} 1 .. 3;
my $crash_logs = q{(SELECT count(*) FROM analytics.logs WHERE custom_identifier LIKE 'crash-%')};
ok(wait_until($coord, 'postgres', "SELECT $crash_logs > 300", 30), 'the writers are writing');
ok(kill9_server($workers[0]), 'worker 1 killed with SIGKILL');
my $saw_errors = 0;
for (1 .. 100)
{
	$saw_errors = grep { -s $_ } map { "$dir/writer_$_.err" } 1 .. 3;
	last if $saw_errors;
	usleep(100_000);
}
ok($saw_errors, 'the writers saw the node down');
$workers[0]->start;
my $acked_before = query("SELECT $crash_logs");
ok(wait_until($coord, 'postgres', "SELECT $crash_logs > $acked_before + 300", 60),
	'the writers write again after the restart');
PostgreSQL::Test::Utils::append_to_file($stop, '');
$_->finish for @writers;
my %acked;
for my $k (1 .. 3)
{
	$acked{$_}++ for grep { /^crash-/ } split /\n/, PostgreSQL::Test::Utils::slurp_file("$dir/writer_$k.out");
}
diag sprintf('%d logs acknowledged', scalar keys %acked);

# Citus commits or aborts what the crash left prepared.
my $prepared = 0;
$prepared += $_->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') for @nodes;
diag "$prepared transactions prepared after the restart";
my $recovered = 0;
for (1 .. 300)
{
	query('SELECT recover_prepared_transactions()');
	$recovered = !grep { $_->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') ne '0' } @nodes;
	last if $recovered;
	usleep(200_000);
}
ok($recovered, 'no prepared transaction is left after recovery');
my %present = map { split /\|/ } split /\n/,
  query(q{SELECT custom_identifier, count(*) FROM analytics.logs WHERE custom_identifier LIKE 'crash-%' GROUP BY 1});
my @lost = grep { !$present{$_} } sort keys %acked;
my @twice = grep { $present{$_} > 1 } sort keys %present;
is(scalar @lost, 0, 'every acknowledged log is present') or diag "lost: @lost[0 .. min(9, $#lost)]";
is(scalar @twice, 0, 'no log is present twice') or diag "twice: @twice[0 .. min(9, $#twice)]";
ids_unique('after the crash');
wait_folded('after the crash');
check_views('after the crash');

note 'delete_customer';
query(q{SELECT analytics.delete_customer('c3')});
is( query(q{SELECT (SELECT count(*) FROM analytics.logs WHERE customer_identifier = 'c3')
                 + (SELECT count(*) FROM analytics.customers WHERE customer_identifier = 'c3')
                 + (SELECT count(*) FROM analytics.usage_daily WHERE customer_identifier = 'c3')
                 + (SELECT count(*) FROM analytics.usage_customer_day WHERE customer_identifier = 'c3')
                 + (SELECT count(*) FROM analytics.usage_customer WHERE customer_identifier = 'c3')
                 + (SELECT count(*) FROM analytics.budget_counters WHERE customer_identifier = 'c3')}),
	'0', "delete_customer: the customer's logs, rollups, counters and row are gone");
check_views('after delete_customer');

note 'set_timezone';
my $zone = 'Asia/Kolkata';
query("SELECT analytics.set_timezone('$zone')");
is(query(q{SELECT string_agg(DISTINCT timezone, ',') FROM analytics.status}), $zone,
	'status shows the new time zone');
isnt( query(q{SELECT string_agg(format('%s %s', d, n), ',' ORDER BY d) FROM (SELECT (created_at AT TIME ZONE 'UTC')::date d, count(*) n FROM analytics.logs GROUP BY 1) x}),
	query(qq{SELECT string_agg(format('%s %s', d, n), ',' ORDER BY d) FROM (SELECT (created_at AT TIME ZONE '$zone')::date d, count(*) n FROM analytics.logs GROUP BY 1) x}),
	'the logs fall on other days in the new zone');
check_views('after set_timezone', $zone);
check_pages('after set_timezone', $zone);

note 'purge_logs';
query("CREATE TABLE public.before_purge AS SELECT $RAW_LOG_COLUMNS FROM analytics.logs");
my $purged = query(q{SELECT analytics.purge_logs(now() - interval '1 day')});
query(q{CREATE TABLE public.purged_logs AS
        SELECT * FROM public.before_purge WHERE id NOT IN (SELECT id FROM analytics.logs)});
cmp_ok($purged, '>', 0, "purge_logs removed logs ($purged)");
is(query('SELECT count(*) FROM public.purged_logs'), $purged, 'purge_logs returns how many it removed');
check_views('after purge_logs', $zone, 'public.purged_logs');

cmp_ok(time - $start, '<', $limit, "took less than $limit seconds");
diag sprintf('citus test: %.0f s', time - $start);
$_->stop for @nodes;
done_testing();

sub min { return $_[0] < $_[1] ? $_[0] : $_[1]; }
