# AnalyticsCitus: what the Citus tests under test/t share.  Whether Citus
# is installed, a cluster of a coordinator and workers on loopback that
# preload citus and the library, and every view compared with the same
# GROUP BY over the raw logs, read through the coordinator.
package AnalyticsCitus;

use strict;
use warnings;

use AnalyticsTest;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(citus_missing citus_cluster view_checks view_mismatches $RAW_LOG_COLUMNS);

# citus_missing(): why the Citus tests cannot run (citus.so is not in the
# pkglibdir of the pg_config on PATH, or of $PG_CONFIG), or undef.
sub citus_missing
{
	my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
	my $libdir = `$pg_config --pkglibdir 2>/dev/null`;
	chomp $libdir;
	return "$pg_config --pkglibdir failed" if $? != 0 || $libdir eq '';
	return "no citus.so in $libdir" unless -f "$libdir/citus.so";
	return undef;
}

# citus_cluster(NAME, workers => N, conf => TEXT): a coordinator and N
# workers (default 2), each a node of analytics_node() that preloads citus
# before the library and listens on 127.0.0.1, TEXT appended to every
# postgresql.conf; citus created in database postgres on each, the workers
# added through the coordinator (which holds no shards), then the extension
# created through the coordinator.  Returns (coordinator, workers...).
sub citus_cluster
{
	my ($name, %params) = @_;
	my $workers = $params{workers} // 2;
	my $conf    = $params{conf}    // '';
	# wal_level logical: shard moves; prepared transactions: Citus' 2PC;
	# connections and worker processes for its executor and maintenance.
	my @nodes = map {
		analytics_node(
			$_ == 0 ? "${name}_coordinator" : "${name}_worker$_",
			conf => <<"CONF")
shared_preload_libraries = 'citus,analytics'
listen_addresses = '127.0.0.1'
wal_level = logical
max_prepared_transactions = 100
max_connections = 150
max_worker_processes = 32
citus.node_conninfo = 'sslmode=disable'
citus.recover_2pc_interval = '1s'
analytics.rollup_interval = '200ms'
$conf
CONF
	} 0 .. $workers;
	$_->safe_psql('postgres', 'CREATE EXTENSION citus') for @nodes;
	my ($coordinator, @workers) = @nodes;
	$coordinator->safe_psql('postgres',
		"SELECT citus_set_coordinator_host('127.0.0.1', " . $coordinator->port . ')');
	$coordinator->safe_psql('postgres', "SELECT citus_add_node('127.0.0.1', " . $_->port . ')')
	  for @workers;
	$coordinator->safe_psql('postgres', 'CREATE EXTENSION analytics');
	return @nodes;
}

# The columns of analytics.logs the raw GROUP BYs read.
# A log without a customer is stored under '' on a cluster
# (docs/scaling-out.md): the raw side reads it as null, as the views do.
our $RAW_LOG_COLUMNS =
  "id, created_at, nullif(customer_identifier, '') AS customer_identifier, model, prompt_tokens, completion_tokens, total_tokens, "
  . 'cost, latency, time_to_first_token, status_code, cached_tokens';

# literal(TEXT): TEXT as an SQL string literal.
sub literal
{
	my ($text) = @_;
	$text =~ s/'/''/g;
	return "'$text'";
}

# view_checks(ZONE, CUSTOMERS): [name, view queries, raw query] for every
# view and read function.  The view queries fill view_rows (the first
# creates it); the raw query reads raw_logs (every log, with its day in
# ZONE and whether it was purged) and raw_customers, copied first by
# view_mismatches().  CUSTOMERS (identifiers) are those the per-customer
# functions are called for, one query each, as an application calls them.
sub view_checks
{
	my ($zone, $customers) = @_;
	my $z = literal($zone);
	my @lits = map { literal($_) } @$customers;
	my $in = join(', ', @lits);
	# since, until of the function calls, and the same as a day filter
	# (a day counts when it overlaps [since, until), days in ZONE).
	my $since = "now() - interval '45 days'";
	my $until = 'now()';
	my $window = sub {
		my ($s, $u) = @_;
		return "day >= (($s) AT TIME ZONE $z)::date AND day::timestamp < ($u) AT TIME ZONE $z";
	};
	my %metric = (cost => 'a.cost', requests => 'a.requests', tokens => 'a.total_tokens');
	my $raw_top = sub {
		my ($s, $u, $m, $n) = @_;
		return "SELECT rank() OVER (ORDER BY $metric{$m} DESC), a.customer_identifier, c.name, c.email,
		               a.requests, a.total_tokens, a.cost
		          FROM (SELECT customer_identifier, count(*) AS requests, sum(total_tokens) AS total_tokens,
		                       sum(cost) AS cost
		                  FROM raw_logs WHERE customer_identifier IS NOT NULL AND " . $window->($s, $u) . "
		                 GROUP BY 1) a
		          JOIN raw_customers c USING (customer_identifier)
		         ORDER BY 1, 2 LIMIT $n";
	};
	my %bucket = (
		day   => 'day',
		week  => 'day - (extract(isodow FROM day)::int - 1)',
		month => "date_trunc('month', day)::date");
	my $last30 = "((now() AT TIME ZONE $z)::date - 29)::timestamp AT TIME ZONE $z";

	my @checks = (
		[
			'users',
			[ q{SELECT customer_identifier, name, email, first_seen, last_active, active_days, requests,
			          errors, prompt_tokens, completion_tokens, total_tokens, cost, billed_cost,
			          round(avg_latency::numeric, 8) AS avg_latency, round(avg_ttft::numeric, 8) AS avg_ttft,
			          top_model, total_spend, cached_tokens, cache_hit_rate, top_models, average_monthly_cost
			     FROM analytics.users} ],
			q{SELECT c.customer_identifier, c.name, c.email, min(l.created_at), max(l.created_at),
			         count(DISTINCT l.day), count(l.id), count(l.id) FILTER (WHERE l.status_code >= 400),
			         coalesce(sum(l.prompt_tokens), 0), coalesce(sum(l.completion_tokens), 0),
			         coalesce(sum(l.total_tokens), 0), coalesce(sum(l.cost), 0),
			         coalesce(sum(l.cost), 0) * (1 + c.markup_percentage / 100),
			         round(avg(l.latency)::numeric, 8), round(avg(l.time_to_first_token)::numeric, 8),
			         (SELECT m.model FROM raw_logs m WHERE m.customer_identifier = c.customer_identifier
			           GROUP BY m.model ORDER BY count(*) DESC, m.model LIMIT 1),
			         coalesce(sum(l.cost), 0) * (1 + c.markup_percentage / 100),
			         coalesce(sum(l.cached_tokens), 0),
			         coalesce(sum(l.cached_tokens), 0)::numeric / nullif(coalesce(sum(l.prompt_tokens), 0), 0),
			         (SELECT coalesce(jsonb_agg(jsonb_build_object('model', m.model, 'requests', m.n, 'cost', m.cost)
			                                    ORDER BY m.cost DESC, m.n DESC, m.model COLLATE "C"), '[]')
			            FROM (SELECT m.model, count(*) AS n, sum(m.cost) AS cost
			                    FROM raw_logs m WHERE m.customer_identifier = c.customer_identifier
			                   GROUP BY m.model ORDER BY 3 DESC, 2 DESC, m.model COLLATE "C" LIMIT 5) m),
			         coalesce(sum(l.cost), 0)
			             / nullif((SELECT count(*) FROM generate_series(date_trunc('month', min(l.created_at) AT TIME ZONE }
			  . $z . q{), date_trunc('month', now() AT TIME ZONE } . $z . q{), interval '1 month')), 0)
			    FROM raw_customers c LEFT JOIN raw_logs l USING (customer_identifier)
			   GROUP BY c.customer_identifier, c.name, c.email, c.markup_percentage}
		],
		[ 'top_users', ['SELECT * FROM analytics.top_users'], $raw_top->($last30, 'now()', 'cost', 10) ],
		(
			map {
				my ($m, $n) = @$_;
				[
					"top_users(45 days, $m, $n)",
					["SELECT * FROM analytics.top_users($since, $until, '$m', $n)"],
					$raw_top->($since, $until, $m, $n)
				]
			} ([ 'requests', 5 ], [ 'tokens', 'NULL' ])
		),
		[
			'daily_active_users',
			['SELECT day, active_users, requests, cost FROM analytics.daily_active_users'],
			q{SELECT day, count(DISTINCT customer_identifier), count(*), sum(cost)
			    FROM raw_logs WHERE customer_identifier IS NOT NULL GROUP BY day}
		],
		(
			map {
				[
					"active_users(45 days, $_)",
					["SELECT bucket_start, active_users, requests, cost FROM analytics.active_users($since, $until, '$_')"],
					"SELECT $bucket{$_}, count(DISTINCT customer_identifier), count(*), sum(cost)
					   FROM raw_logs WHERE customer_identifier IS NOT NULL AND " . $window->($since, $until) . "
					  GROUP BY 1"
				]
			} qw(day week month)
		),
		[
			'cost_by_user',
			['SELECT day, customer_identifier, requests, prompt_tokens, completion_tokens, cost FROM analytics.cost_by_user'],
			q{SELECT day, customer_identifier, count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost)
			    FROM raw_logs WHERE customer_identifier IS NOT NULL GROUP BY 1, 2}
		],
		[
			'logs_with_customer',
			# The view shows the stored '' of a log without a customer.
			[ q{SELECT id, created_at, nullif(customer_identifier, ''), model, cost, status_code, name, email,
			          customer_metadata
			     FROM analytics.logs_with_customer} ],
			q{SELECT l.id, l.created_at, l.customer_identifier, l.model, l.cost, l.status_code, c.name, c.email,
			         c.metadata
			    FROM raw_logs l LEFT JOIN raw_customers c USING (customer_identifier)
			   WHERE NOT l.purged}
		],
		[
			'customer_logs(customer, null, null, 5), customer_logs(customer, 1 day, now, null)',
			[
				map {
					my $c = $_;
					(
						"SELECT ${c}::text AS c, 'last 5'::text AS args, row_number() OVER () AS n, id
						   FROM analytics.customer_logs($c, NULL, NULL, 5)",
						"SELECT ${c}::text, 'one day', row_number() OVER (), id
						   FROM analytics.customer_logs($c, now() - interval '1 day', now(), NULL)")
				} @lits, literal('nobody')
			],
			"SELECT customer_identifier, args, n, id
			   FROM (SELECT customer_identifier, 'last 5'::text AS args, id,
			                row_number() OVER (PARTITION BY customer_identifier ORDER BY created_at DESC, id DESC) AS n
			           FROM raw_logs WHERE NOT purged AND customer_identifier IN ($in)) x
			  WHERE n <= 5
			 UNION ALL
			 SELECT customer_identifier, 'one day', row_number() OVER (PARTITION BY customer_identifier
			                                                         ORDER BY created_at DESC, id DESC), id
			   FROM raw_logs
			  WHERE NOT purged AND customer_identifier IN ($in)
			    AND created_at >= now() - interval '1 day' AND created_at < now()"
		],
		# The period bounds are check_budget's; the raw side checks they
		# hold now() and sums the billed cost of the logs in them.
		[
			'check_budget(customer), period_spend(customer)',
			[
				map {
					"SELECT ${_}::text AS c, b.period_start, b.period_end, b.period_spend, b.total_spend,
					        analytics.period_spend($_) AS spend_fn
					   FROM analytics.check_budget($_) b"
				} @lits
			],
			q{SELECT v.c, CASE WHEN now() >= v.period_start AND now() < v.period_end THEN v.period_start END,
			         v.period_end, p.spend, t.spend, p.spend
			    FROM view_rows v
			    JOIN raw_customers c ON c.customer_identifier = v.c
			   CROSS JOIN LATERAL (SELECT coalesce(sum(l.cost), 0) * (1 + c.markup_percentage / 100) AS spend
			                         FROM raw_logs l
			                        WHERE l.customer_identifier = v.c
			                          AND l.created_at >= v.period_start AND l.created_at < v.period_end) p
			   CROSS JOIN LATERAL (SELECT coalesce(sum(l.cost), 0) * (1 + c.markup_percentage / 100) AS spend
			                         FROM raw_logs l WHERE l.customer_identifier = v.c) t}
		]);
	return @checks;
}

# view_mismatches(NODE, ZONE, PURGED): every check of view_checks() run
# through NODE (database postgres), each in one transaction of its own
# (one psql -c string):
# the raw logs copied into raw_logs (plus the rows of the table PURGED, the
# logs purge_logs removed, when given), the customers into raw_customers,
# the view's rows into view_rows, the raw GROUP BY into raw_rows, compared
# as multisets.  Returns [name, mismatches or undef on error, detail] per
# check; detail lists up to 10 differing rows, or the error.
sub view_mismatches
{
	my ($node, $zone, $purged) = @_;
	my $customers = $node->safe_psql('postgres',
		'SELECT customer_identifier FROM analytics.customers ORDER BY 1');
	my $z = literal($zone);
	my $copy = "CREATE TEMP TABLE raw_logs AS
	    SELECT false AS purged, $RAW_LOG_COLUMNS, (created_at AT TIME ZONE $z)::date AS day
	      FROM analytics.logs;\n";
	$copy .= "INSERT INTO raw_logs SELECT true, $RAW_LOG_COLUMNS, (created_at AT TIME ZONE $z)::date
	            FROM $purged;\n" if defined $purged;
	$copy .= "CREATE TEMP TABLE raw_customers AS SELECT * FROM analytics.customers;\n";
	my @results;
	for my $check (view_checks($zone, [ split /\n/, $customers ]))
	{
		my ($name, $views, $raw) = @$check;
		my ($first, @rest) = @$views;
		my $sql = $copy
		  . "CREATE TEMP TABLE view_rows AS $first;\n"
		  . join('', map { "INSERT INTO view_rows $_;\n" } @rest)
		  . "CREATE TEMP TABLE raw_rows AS SELECT * FROM view_rows LIMIT 0;\n"
		  . "INSERT INTO raw_rows $raw;\n"
		  . q{SELECT count(*) || coalesce(E'\n' || string_agg(side || ': ' || r, E'\n') FILTER (WHERE k <= 10), '')
		        FROM (SELECT side, r, row_number() OVER () AS k
		                FROM (SELECT 'view only' AS side, x::text AS r
		                        FROM (SELECT * FROM view_rows EXCEPT ALL SELECT * FROM raw_rows) x
		                      UNION ALL
		                      SELECT 'raw only', x::text
		                        FROM (SELECT * FROM raw_rows EXCEPT ALL SELECT * FROM view_rows) x) d) e};
		my ($ret, $out) = psql_verbose($node, 'postgres', $sql);
		my ($count, $detail) = $ret == 0 ? split(/\n/, $out, 2) : (undef, $out);
		push @results, [ $name, $count, $detail // '' ];
	}
	return @results;
}

1;
