# Upgrade test (SPEC section 15).  Builds the oldest release listed in
# test/releases from its commit (scripts/test.sh extracts the tree into
# tmp_release/VERSION), installs it into a relocated copy of PostgreSQL (the
# system install is not touched), and on a cluster run by those binaries
# (install_path) creates the extension at that version and loads data:
# customers with period and total budgets and markups, a blocked one, logs
# folded and pending, budget counters, rollups, purged logs.  It records
# every table (row count and md5 of the ordered rows) and the output of
# every view and read function.  Then it restarts the same data directory
# with the system binaries, where scripts/test.sh installed the current
# library, and checks that before ALTER EXTENSION UPDATE the old database is
# not harmed: the worker waits, writes refuse with a hint to run ALTER
# EXTENSION analytics UPDATE, reads give the same figures or refuse the same
# way, nothing changes.  Then it updates and checks: the schema dump equals
# that of a fresh install of the current version, every row and figure is
# kept, and stays so once the worker has folded the pending logs.  Bounded
# to 90 seconds.
use strict;
use warnings;

use AnalyticsTest;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $start = time;
my $limit = 90;
my $root  = abs_path(dirname(__FILE__) . '/../..');

my ($old, $commit) =
  map { split ' ' } grep { /\S/ && !/^#/ } split /\n/, slurp_file("$root/test/releases");
my ($new) = slurp_file("$root/analytics.control") =~ /^default_version = '(.*)'/m;
my $release = "$root/tmp_release/$old";
ok($old && $commit && $new, "a release in test/releases ($old) and a default_version ($new)")
  or BAIL_OUT('no release or no default_version');
-f "$release/Makefile"
  or BAIL_OUT("$release is missing: scripts/test.sh extracts the released trees from git before this test");
is(slurp_file("$release/.release-commit") =~ s/\n//r, $commit, "$release is commit $commit")
  or BAIL_OUT('wrong release tree');

my $tmp   = PostgreSQL::Test::Utils::tempdir;
my $p     = "$tmp/pg";
# The PostgreSQL the tests run with (PG_CONFIG, from PGBIN: the system's
# under /usr, or a private copy with the same layout under another prefix).
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
my $prefix    = `$pg_config --bindir` =~ s{/lib/postgresql/15/bin\n?$}{}r;
my $oldpg     = "$p$prefix/lib/postgresql/15";
my $oldshare  = "$p$prefix/share/postgresql/15";

note "build $old (commit " . substr($commit, 0, 12) . ') into a relocated copy of PostgreSQL';
system('mkdir', '-p', "$p$prefix/lib/postgresql", "$p$prefix/share/postgresql") == 0 or die;
system('cp', '-a', "$prefix/lib/postgresql/15", "$p$prefix/lib/postgresql/") == 0 or die;
system('cp', '-a', "$prefix/share/postgresql/15", "$p$prefix/share/postgresql/") == 0 or die;
is( `$oldpg/bin/pg_config --pkglibdir` . `$oldpg/bin/pg_config --sharedir`,
	"$oldpg/lib\n$oldshare\n",
	'the relocated pg_config reports the relocated directories');
# The copy carries the current version (installed by scripts/test.sh): only
# the release may be there.
system("rm -rf $oldpg/lib/analytics.so $oldpg/lib/bitcode/analytics* $oldshare/extension/analytics*") == 0
  or die;
my ($out, $err) = ('', '');
IPC::Run::run([ 'make', '-C', $release, '-s', "PG_CONFIG=$pg_config" ], '>', \$out, '2>', \$err)
  or BAIL_OUT("the $old release does not build: $err");
IPC::Run::run([ 'make', '-C', $release, '-s', "PG_CONFIG=$pg_config", "DESTDIR=$p", 'install' ],
	'>', \$out, '2>', \$err)
  or BAIL_OUT("the $old release does not install into $p: $err");
opendir my $dh, "$oldshare/extension" or die;
is(join(' ', sort grep { /^analytics/ } readdir $dh), "analytics--$old.sql analytics.control",
	'only the release in the relocated extension directory');
is(slurp_file("$release/sql/analytics--$old.sql"), slurp_file("$root/sql/analytics--$old.sql"),
	"the $old release builds the install script sql/analytics--$old.sql");

note "$old: initdb and start a cluster";
my $node = analytics_node('upgrade', install_path => $oldpg, conf => 'analytics.worker_enabled = off');

# query(DB, SQL): the result of SQL, dying on error.
sub query { return $node->safe_psql(@_); }

query('postgres', 'CREATE DATABASE up');
query('up', "CREATE EXTENSION analytics VERSION '$old'");
is(query('up', "SELECT extversion FROM pg_extension WHERE extname = 'analytics'"), $old, "at $old");

# Every timestamp is relative to T0, fixed for the whole test, so that every
# figure is computed on the same ranges before and after.
my $t0 = query('up', "SELECT date_trunc('day', now() - interval '1 day')");
note "$old: load data (T0 = $t0)";
query('up', <<'SQL', extra_params => [ '-v', "t0=$t0" ]);
SET TimeZone = 'UTC';
SELECT analytics.set_timezone('Europe/Paris');
INSERT INTO analytics.model_prices VALUES ('acme-', 1.25, 3.5);
-- period budget with markup, monthly; total budget; both, daily; none.
SELECT analytics.upsert_customer('{"customer_identifier": "alice", "name": "Alice", "email": "alice@example.com",
    "period_budget": 500, "budget_duration": "monthly", "markup_percentage": 20}');
SELECT analytics.upsert_customer('{"customer_identifier": "bob", "total_budget": 300, "metadata": {"tier": "gold"}}');
INSERT INTO analytics.customers (customer_identifier, name, period_budget, budget_duration, period_start,
                                 total_budget, markup_percentage)
VALUES ('carol', 'Carol', 40, 'daily', '2025-01-01 06:00+00', 900, 10),
       ('dave', 'Dave', NULL, 'weekly', '2025-01-01', NULL, 0);
-- Old logs (purged below), recent logs, through every write path.
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost, latency,
                            status_code, created_at, metadata)
SELECT (ARRAY['alice', 'bob', 'carol', 'dave', 'erin', 'frank'])[1 + g % 6],
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'acme-large', 'other'])[1 + g % 4],
       g % 900, g % 130, CASE WHEN g % 4 = 3 THEN g % 7 * 0.01 END,
       CASE WHEN g % 5 <> 0 THEN (g % 11) / 4.0 END, CASE WHEN g % 13 = 0 THEN 500 ELSE 200 END,
       :'t0'::timestamptz - interval '40 days' + g * interval '97 minutes',
       jsonb_build_object('g', g)
  FROM generate_series(1, 400) g;
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "erin", "prompt_tokens": 1200,
    "completion_tokens": 300, "latency": 0.8, "timestamp": "' || (:'t0'::timestamptz + interval '2 hours') || '"}');
SELECT analytics.ingest_openai(
    '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "customer_params": {"customer_identifier": "gina", "name": "Gina", "total_budget": 50}}',
    '{"id": "x", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}], "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}}',
    1.5);
SELECT analytics.ingest_batch(string_agg(format('{"model": "acme-small", "customer_identifier": "%s", "prompt_tokens": %s, "timestamp": "%s"}',
    (ARRAY['alice', 'frank', 'gina'])[1 + g % 3], g * 10, :'t0'::timestamptz - g * interval '5 hours'), E'\n'))
  FROM generate_series(1, 30) g;
-- Fold everything, delete the raw logs older than 20 days (retained_from).
SELECT analytics.purge_logs(:'t0'::timestamptz - interval '20 days');
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'dave';
-- What a 1.0 site may have granted its application role: enough to rewrite
-- budgets.  The update takes it back.
CREATE ROLE site_app NOLOGIN;
GRANT UPDATE ON analytics.budget_counters, analytics.customers TO site_app;
GRANT UPDATE (period_budget, blocked) ON analytics.customers TO site_app;
GRANT INSERT ON analytics.usage_daily TO PUBLIC;
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, created_at)
SELECT (ARRAY['alice', 'bob', 'carol', 'erin'])[1 + g % 4], 'gpt-4o', 100 + g, g, :'t0'::timestamptz + g * interval '7 minutes'
  FROM generate_series(1, 40) g;
SELECT analytics.rollup_now();
-- Pending: written after the last fold (the worker is off).
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, created_at)
SELECT (ARRAY['alice', 'bob', 'carol', 'erin', 'frank'])[1 + g % 5], 'gpt-4o-mini', 50 * g, 3 * g,
       :'t0'::timestamptz + interval '12 hours' + g * interval '3 minutes'
  FROM generate_series(1, 25) g;
SQL
is(query('up', 'SELECT logs_pending = 25 AND watermark > 0 AND retained_from IS NOT NULL FROM analytics.status'),
	't', 'the load left folded, pending and purged logs')
  or diag query('up', 'SELECT * FROM analytics.status');

# What is recorded: every table of OLD (its columns of OLD, so columns added
# later do not count), the identity sequence, and every view and read
# function (their columns of OLD, found with \gdesc).
my $tables_sql = query('up', q{
SELECT format('SELECT %L || count(*) || '' '' || coalesce(md5(string_agg(r::text, E''\\n'' ORDER BY r::text)), ''-'') FROM (SELECT %s FROM analytics.%I) r;',
              'table ' || c.relname || ': ', string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'p')
 GROUP BY c.relname
UNION ALL
SELECT format('SELECT %L || last_value || '' '' || is_called FROM analytics.%I;', 'sequence ' || c.relname || ': ', c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'analytics' AND c.relkind = 'S'
 ORDER BY 1}) . "\n";
my @figures = (
	[ users              => 'SELECT * FROM analytics.users' ],
	[ top_users          => 'SELECT * FROM analytics.top_users' ],
	[ daily_active_users => 'SELECT * FROM analytics.daily_active_users' ],
	[ cost_by_user       => 'SELECT * FROM analytics.cost_by_user' ],
	[ logs_with_customer => 'SELECT * FROM analytics.logs_with_customer' ],
	[
		status =>
		  'SELECT watermark, logs_pending, last_pass_folded, timezone, retained_from FROM analytics.status'
	],
	[
		active_users_day =>
		  "SELECT * FROM analytics.active_users(TIMESTAMPTZ '$t0' - interval '45 days', TIMESTAMPTZ '$t0' + interval '1 day')"
	],
	[
		active_users_week =>
		  "SELECT * FROM analytics.active_users(TIMESTAMPTZ '$t0' - interval '45 days', TIMESTAMPTZ '$t0' + interval '1 day', 'week')"
	],
	[
		active_users_month =>
		  "SELECT * FROM analytics.active_users(TIMESTAMPTZ '$t0' - interval '45 days', TIMESTAMPTZ '$t0' + interval '1 day', 'month')"
	],
	[
		top_users_cost =>
		  "SELECT * FROM analytics.top_users(TIMESTAMPTZ '$t0' - interval '30 days', TIMESTAMPTZ '$t0' + interval '1 day')"
	],
	[
		top_users_requests =>
		  "SELECT * FROM analytics.top_users(TIMESTAMPTZ '$t0' - interval '45 days', TIMESTAMPTZ '$t0', 'requests', 3)"
	],
	[
		customer_logs =>
		  "SELECT * FROM analytics.customer_logs('alice', TIMESTAMPTZ '$t0' - interval '10 days', TIMESTAMPTZ '$t0' + interval '1 day', 50)"
	],
	[ check_budget_alice => "SELECT * FROM analytics.check_budget('alice')" ],
	[ check_budget_bob   => "SELECT * FROM analytics.check_budget('bob')" ],
	[ check_budget_carol => "SELECT * FROM analytics.check_budget('carol')" ],
	[ check_budget_dave  => "SELECT * FROM analytics.check_budget('dave')" ],
	[ check_budget_gina  => "SELECT * FROM analytics.check_budget('gina')" ],
	[
		period_spend =>
		  "SELECT c, analytics.period_spend(c) FROM unnest(ARRAY['alice', 'bob', 'carol']) c"
	],
	[
		budget_period =>
		  "SELECT * FROM analytics.budget_period('carol', TIMESTAMPTZ '$t0' + interval '3 hours')"
	]);
my @figure_sql;
for my $f (@figures)
{
	my ($name, $sql) = @$f;
	my $cols = join ',',
	  map { '"' . (split /\|/)[0] . '"' } split /\n/, query('up', "$sql \\gdesc");
	BAIL_OUT("no columns for $name") if $cols eq '';
	push @figure_sql, [ $name, "SELECT 'figure $name: ' || row($cols)::text FROM ($sql) t ORDER BY 1;" ];
}
my $figures_sql = join("\n", map { $_->[1] } @figure_sql) . "\n";

# lines(TEXT, PATTERN): the lines of TEXT that match PATTERN.
sub lines
{
	my ($text, $pattern) = @_;
	return join("\n", grep { /$pattern/ } split /\n/, $text);
}

my $before = query('up', $tables_sql . $figures_sql);
for my $f (@figures)
{
	like($before, qr/^figure $f->[0]: /m, "$f->[0] gives rows")
	  or BAIL_OUT("$f->[0] gives no row: the test would prove nothing");
}
is(lines($before, qr/^table [a-z_]+: 0 /), '', 'no table is empty after the load')
  or BAIL_OUT('empty tables after the load: the test would prove nothing');
diag sprintf('recorded %d tables, %d sequence, %d rows of %d views and functions',
	scalar(() = $before =~ /^table /mg), scalar(() = $before =~ /^sequence /mg),
	scalar(() = $before =~ /^figure /mg), scalar @figures);
diag "  $_" for split /\n/, lines($before, qr/^table (logs|usage_daily|budget_counters|customers):/);

note "stop; start the same data directory with the current library ($new)";
$node->stop;
set_install_path($node, undef);
$node->append_conf('postgresql.conf', "analytics.worker_enabled = on\nanalytics.rollup_interval = '200ms'\n");
my $log_start = log_offset($node);
$node->start;

note 'before ALTER EXTENSION UPDATE: the worker waits';
my $waits = sub {
	return scalar(() = log_since($node, $log_start) =~ /analytics rollup worker waits for ALTER EXTENSION analytics UPDATE/g);
};
my $deadline = time + 15;
sleep 0.2 while $waits->() == 0 && time < $deadline;
ok($waits->() > 0, 'a worker visited and says it waits');
my $status0 = query('up', 'SELECT watermark, logs_pending FROM analytics.status');
sleep 2.5;
is(query('up', 'SELECT watermark, logs_pending FROM analytics.status'),
	$status0, "the worker did not fold against the $old objects");
is($waits->(), 1, 'the workers log once that they wait');
unlike(log_since($node, $log_start), qr/ERROR:/, 'no worker failed against the old objects');
diag "the worker waits; watermark and pending stay ($status0)";

note 'before ALTER EXTENSION UPDATE: writes refuse with the hint';
my $hint = 'HINT:  Run ALTER EXTENSION analytics UPDATE.';

# refused(SQL[, STDIN]): SQL must fail with 55000 and the hint to update;
# nothing else is accepted.
sub refused
{
	my ($sql, $stdin) = @_;
	my ($o, $e) = ('', '');
	my $ok = IPC::Run::run(
		[
			$node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
			'-h', $node->host, '-p', $node->port, '-d', 'up', '-c', $sql
		],
		'<', \$stdin, '>', \$o, '2>', \$e);
	$o .= $e;
	ok( !$ok
		  && $o =~ /ERROR:  55000: analytics \Q$old\E is installed but the loaded library is version \Q$new\E/
		  && index($o, $hint) >= 0,
		"refused with the update hint: $sql") or diag $o;
	return;
}
my @writes = (
	q{INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens) VALUES ('erin', 'gpt-4o', 10)},
	q{INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('newcomer', 'gpt-4o', 1)},
	q{SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "erin"}')},
	q{SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "erin"}'::jsonb)},
	q{SELECT analytics.ingest_openai('{"model": "gpt-4o", "user": "erin"}', '{"object": "chat.completion", "usage": {"prompt_tokens": 1}}')},
	q{SELECT analytics.ingest_batch('{"model": "gpt-4o", "customer_identifier": "erin"}')},
	q{SELECT analytics.rollup_now()},
	"SELECT analytics.purge_logs(TIMESTAMPTZ '$t0' - interval '5 days')",
	q{SELECT analytics.delete_customer('frank')},
	q{SELECT analytics.set_timezone('UTC')},
	q{UPDATE analytics.customers SET period_budget = 1 WHERE customer_identifier = 'alice'},
	q{SELECT analytics.upsert_customer('{"customer_identifier": "bob", "total_budget": 1}')});
refused($_, '') for @writes;
refused('COPY analytics.logs (customer_identifier, model, prompt_tokens) FROM STDIN', "erin\tgpt-4o\t10\n");
diag scalar(@writes) + 1 . " writes (COPY included) refused with 55000 and \"$hint\"";

note 'before ALTER EXTENSION UPDATE: reads give the same figures or refuse with the hint';
my ($same, $refusals) = (0, 0);
for my $f (@figure_sql)
{
	my ($name, $sql) = @$f;
	my ($ret, $o) = psql_verbose($node, 'up', $sql);
	if ($ret == 0)
	{
		is($o, lines($before, qr/^figure $name: /), "$name is the same before the update");
		$same++;
	}
	else
	{
		ok(index($o, $hint) >= 0, "$name refuses with the update hint") or diag $o;
		$refusals++;
	}
}
diag "$same views and functions give the same rows, $refusals refuse with the hint";
my $between = query('up', $tables_sql);
# A refused INSERT has drawn its id (as any failed INSERT does): the
# sequence may move, no table may.
is(lines($between, qr/^table /), lines($before, qr/^table /), "the $old database did not change before the update");
diag 'every table unchanged (' . lines($between, qr/^sequence /) . ', was '
  . (lines($before, qr/^sequence /) =~ s/^(\S+ \S+ )//r) . ')';
my $crash = qr/terminated by signal|exited with exit code [1-9]|PANIC/;
is(lines(log_since($node, $log_start), $crash), '', 'no process failed before the update');

note 'ALTER EXTENSION analytics UPDATE';
# The update and the first reads in one transaction: the worker cannot see
# the new version, and fold, before they are done.
my $after = query('up', "BEGIN;\nALTER EXTENSION analytics UPDATE;\n" . $tables_sql . $figures_sql . "COMMIT;\n");
is(query('up', "SELECT extversion FROM pg_extension WHERE extname = 'analytics'"), $new, "at $new after the update");
is(lines($after, qr/^(?!sequence )/), lines($before, qr/^(?!sequence )/), 'rows and figures kept by the update');
is(lines($after, qr/^sequence /), lines($between, qr/^sequence /), 'the update did not move the sequence');
diag sprintf('every row (%d tables, the sequence) and every figure (%d rows) kept',
	scalar(() = $after =~ /^table /mg), scalar(() = $after =~ /^figure /mg));

note "grants of $old that could rewrite budgets are gone";
is( query('up', q{SELECT has_table_privilege('site_app', 'analytics.budget_counters', 'UPDATE')
             OR has_table_privilege('site_app', 'analytics.customers', 'UPDATE')
             OR has_column_privilege('site_app', 'analytics.customers', 'period_budget', 'UPDATE')
             OR has_column_privilege('site_app', 'analytics.customers', 'blocked', 'UPDATE')
             OR has_table_privilege('public', 'analytics.usage_daily', 'INSERT')}),
	'f',
	'site_app and PUBLIC lost their writes of budget_counters, customers and usage_daily');

note "the schema equals a fresh install of $new";
query('postgres', 'CREATE DATABASE fresh');
query('fresh', 'CREATE EXTENSION analytics');

# schema(DB): pg_dump --schema-only --binary-upgrade (which dumps the
# members of the extension one by one) without what names OIDs or
# transaction ids (the OID preservation calls, the relfrozenxid updates, the
# OIDs of the configuration tables, whose number and order stay), the
# sequence's position (data, compared above), the random key of \restrict,
# and the stored default of a column the update added with DEFAULT
# (binary_upgrade_set_missing_value: how PostgreSQL stores the default of the
# rows that were there, data like them; the column and its DEFAULT are
# compared).  Runs of blank lines left by what was dropped count as one.
sub schema
{
	my ($db) = @_;
	my $dump = '';
	IPC::Run::run(
		[
			$node->installed_command('pg_dump'), '-h', $node->host, '-p', $node->port,
			'--schema-only', '--binary-upgrade', '-d', $db
		],
		'>', \$dump) or die "pg_dump $db failed";
	my @kept;
	for (split /\n/, $dump)
	{
		next
		  if /binary_upgrade_set_next_/
		  || /^SET relfrozenxid = /
		  || /^WHERE oid = '[0-9]*';$/
		  || /^\\(un)?restrict /
		  || /^-- Dumped/
		  || /^SELECT pg_catalog\.setval\(/
		  || /^SELECT pg_catalog\.binary_upgrade_set_missing_value\(/
		  || /^-- set missing value\.$/;
		s/[0-9]{5,}/OID/g if /binary_upgrade_create_empty_extension/;
		push @kept, $_;
	}
	return join("\n", @kept) =~ s/\n{3,}/\n\n/gr . "\n";
}
my $schema_up    = schema('up');
my $schema_fresh = schema('fresh');
like($schema_fresh, qr/CREATE TABLE analytics\.logs/, "the dump lists the extension's members");
append_to_file("$tmp/schema_fresh.sql", $schema_fresh);
append_to_file("$tmp/schema_up.sql",    $schema_up);
my $diff = `diff $tmp/schema_fresh.sql $tmp/schema_up.sql | head -60`;
is($diff, '', 'the updated schema equals a fresh install (diff: fresh, updated)') or diag $diff;
diag 'pg_dump --schema-only --binary-upgrade: identical (' . scalar(() = $schema_up =~ /\n/g) . ' lines)';

note 'the worker resumes and folds; the figures stay';
ok( wait_until($node, 'up',
		'SELECT logs_pending = 0 AND watermark >= (SELECT max(id) FROM analytics.logs) FROM analytics.status', 20),
	'the worker folded after the update')
  or diag query('up', 'SELECT * FROM analytics.status');
like(log_since($node, $log_start), qr/analytics rollup worker resumes/, 'the worker logs that it resumes');
my $folded = lines(query('up', $figures_sql), qr/^(?!figure status: )/);
is($folded, lines($before, qr/^figure (?!status: )/), 'figures unchanged once the worker folded');
diag scalar(split /\n/, $folded) . ' rows of views and functions unchanged after the fold';

note 'writes work again';
query('up', q{INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens) VALUES ('erin', 'gpt-4o', 10)});
my $id = query('up', q{SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "newcomer"}')});
ok(wait_until($node, 'up', "SELECT logs_pending = 0 AND watermark = $id FROM analytics.status", 10),
	'the new logs are folded');
is(query('up', q{SELECT requests FROM analytics.users WHERE customer_identifier = 'newcomer'}),
	'1', 'the new customer is counted');
is(lines(log_since($node, $log_start), $crash), '', 'no process failed');
cmp_ok(time - $start, '<', $limit, "took less than $limit seconds");
diag sprintf('upgrade test: %.0f s', time - $start);
$node->stop;
done_testing();
