# AnalyticsTest: what the process-level tests under test/t share.  A node
# that preloads the library, polling a query with a time limit, a kill -9 of
# a whole server, the server log since an offset, sessions run and timed in
# the background, and the queries that compare the rollup and the views with
# the GROUP BY over the raw logs.
package AnalyticsTest;

use strict;
use Cwd ();
use warnings;

use Exporter 'import';
use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(
  analytics_node wait_until kill9_server set_install_path log_offset log_since psql_verbose
  run_timed wait_timed read_timed listen_start listen_payloads listen_stop
  $USAGE_MISMATCHES $VIEW_MISMATCHES $USERS_MISMATCHES);

# analytics_node(NAME, conf => TEXT, start => 0|1, CLUSTER-NEW-PARAMS...):
# a new cluster that preloads the library (max_worker_processes 16, no
# statement logging), TEXT appended to postgresql.conf; started unless
# start => 0.
sub analytics_node
{
	my ($name, %params) = @_;
	my $conf  = delete $params{conf}  // '';
	my $start = delete $params{start} // 1;
	my $node  = PostgreSQL::Test::Cluster->new($name, %params);

	$node->init;
	$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'analytics'
max_worker_processes = 16
log_statement = none
$conf
CONF
	$node->start if $start;
	return $node;
}

# wait_until(NODE, DB, SQL, SECONDS): poll SQL every 0.2 s until it returns
# t; true if it did within SECONDS.
sub wait_until
{
	my ($node, $db, $sql, $seconds) = @_;
	my $deadline = time + $seconds;

	while (time < $deadline)
	{
		my ($ret, $out) = $node->psql($db, $sql);
		return 1 if $ret == 0 && $out eq 't';
		usleep(200_000);
	}
	return 0;
}

# kill9_server(NODE): SIGKILL to the postmaster and all its children at
# once, as a power loss would (and to any child forked meanwhile), then
# wait (15 s at most) until they are gone or zombies.  A zombie postmaster (where nothing reaps it) leaves a stale
# postmaster.pid and socket lock, which are removed so the node can start.
sub kill9_server
{
	my ($node) = @_;
	my $pm = PostgreSQL::Test::Utils::slurp_file($node->data_dir . '/postmaster.pid');
	($pm) = split /\n/, $pm;
	my @children = split ' ', `pgrep -P $pm`;

	kill 'KILL', $pm, @children;
	$node->kill9;	# forgets the pid

	my $alive = sub {
		for my $pid (@_)
		{
			next unless -e "/proc/$pid";
			my $status = eval { PostgreSQL::Test::Utils::slurp_file("/proc/$pid/status") } // '';
			return 1 unless $status =~ /^State:.*Z/m;
		}
		return 0;
	};
	# A backend the postmaster forked after the pgrep above (a connection
	# accepted in the last moment) is not in @children, and, orphaned,
	# keeps the shared memory attached, so the node would refuse to start
	# ("pre-existing shared memory block is still in use").  Find those by
	# their process title, which carries the node's cluster_name, and their
	# working directory, the node's data directory (so that a node of the
	# same name in another test run is left alone).
	my $name = $node->name;
	my $dir = Cwd::realpath($node->data_dir);
	my $stray = sub {
		return grep { (readlink("/proc/$_/cwd") // '') eq $dir }
		  split ' ', `pgrep -f '^postgres: \Q$name\E:'`;
	};
	my $deadline = time + 15;
	while (time < $deadline)
	{
		my @rest = $stray->();
		kill 'KILL', @rest if @rest;
		push @children, @rest;
		last unless $alive->($pm, @children);
		usleep(100_000);
	}
	return 0 if $alive->($pm, @children);
	if (-e "/proc/$pm")
	{
		unlink $node->data_dir . '/postmaster.pid';
		unlink $node->host . '/.s.PGSQL.' . $node->port . '.lock';
	}
	return 1;
}

# set_install_path(NODE, PATH): run the node's data directory with the
# binaries of another installation from now on (undef: the ones on PATH);
# the node must be stopped.  PostgreSQL::Test::Cluster takes the path only
# in new(), so this sets the field that new() sets.
sub set_install_path
{
	my ($node, $path) = @_;
	die 'set_install_path: the node runs' if defined $node->{_pid};
	$node->{_install_path} = $path;
	return;
}

# log_offset(NODE): the current size of the server log.
sub log_offset
{
	my ($node) = @_;
	return -s $node->logfile // 0;
}

# log_since(NODE, OFFSET): the server log from OFFSET on.
sub log_since
{
	my ($node, $offset) = @_;
	return PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset // 0);
}

# psql_verbose(NODE, DB, SQL[, USER]): run SQL with VERBOSITY=verbose (errors
# carry their SQLSTATE); returns (exit status, stdout and stderr together,
# without trailing newlines).
sub psql_verbose
{
	my ($node, $db, $sql, $user) = @_;
	my ($out, $err) = ('', '');
	my @cmd = (
		$node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=1',
		'-v', 'VERBOSITY=verbose', '-h', $node->host, '-p', $node->port,
		(defined $user ? ('-U', $user) : ()), '-d', $db, '-c', $sql);
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err);
	my $ret = $? >> 8;
	s/\n+\z// for $out, $err;
	return ($ret, join("\n", grep { $_ ne '' } $out, $err));
}

# run_timed(NODE, DIR, NAME, USER, DB, SQL, ENV...): run SQL from stdin in a
# session of its own (USER undef: the bootstrap superuser) in a child process (application_name NAME, psql's
# verbose errors, the extra environment given); DIR/NAME.time gets "launch
# return exit-status" (epoch seconds) when it ends, DIR/NAME.out the output.
# Returns the child's pid.
sub run_timed
{
	my ($node, $dir, $name, $user, $db, $sql, %env) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;

	local %ENV = (%ENV, PGAPPNAME => $name, %env);
	my $t0 = time;
	IPC::Run::run(
		[
			$node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=1',
			'-v', 'VERBOSITY=verbose', '-h', $node->host, '-p', $node->port,
			(defined $user ? ('-U', $user) : ()), '-d', $db, '-f', '-'
		],
		'<', \$sql, '>&', "$dir/$name.out");
	my $rc = $? >> 8;
	my $t1 = time;
	open my $fh, '>', "$dir/$name.time" or POSIX::_exit(2);
	printf $fh "%.6f %.6f %d\n", $t0, $t1, $rc;
	close $fh;
	POSIX::_exit(0);
}

# wait_timed(PID...): wait for the children started by run_timed.
sub wait_timed
{
	waitpid($_, 0) for @_;
	return;
}

# read_timed(DIR, NAME): { launch, end, rc, dur, out } of a timed session.
sub read_timed
{
	my ($dir, $name) = @_;
	my ($t0, $t1, $rc) =
	  split ' ', PostgreSQL::Test::Utils::slurp_file("$dir/$name.time");
	my $out = PostgreSQL::Test::Utils::slurp_file("$dir/$name.out");
	return {
		launch => $t0,
		end    => $t1,
		rc     => $rc,
		dur    => sprintf('%.3f', $t1 - $t0),
		out    => $out
	};
}

# listen_start(NODE, DB, CHANNEL): a psql session that LISTENs on CHANNEL
# (IPC::Run harness and its buffers), for listen_payloads.
sub listen_start
{
	my ($node, $db, $channel) = @_;
	my $l = { in => "LISTEN $channel;\nSELECT 'listening';\n", out => '', err => '' };
	$l->{h} = IPC::Run::start(
		[
			$node->installed_command('psql'), '-XAtq', '-h', $node->host,
			'-p', $node->port, '-d', $db
		],
		'<', \$l->{in}, '>', \$l->{out}, '2>', \$l->{err},
		IPC::Run::timeout(600));
	$l->{h}->pump until $l->{out} =~ /^listening$/m;
	return $l;
}

# listen_payloads(LISTENER, COUNT, SECONDS): the payloads of the
# notifications the listener has received, in order, once there are COUNT
# of them or SECONDS have passed (psql prints a notification after the
# command during which it arrived, so the listener runs a query every 0.2 s).
sub listen_payloads
{
	my ($l, $count, $seconds) = @_;
	my $deadline = time + $seconds;
	my $n = 0;
	my @payloads;

	while (1)
	{
		$n++;
		$l->{in} .= "SELECT 'sync $n';\n";
		$l->{h}->pump until $l->{out} =~ /^sync $n$/m;
		@payloads = $l->{out} =~
		  /^Asynchronous notification "[^"]+" with payload "(.*)" received from server process with PID \d+\.$/mg;
		last if @payloads >= $count || time > $deadline;
		usleep(200_000);
	}
	return @payloads;
}

# listen_stop(LISTENER): end the listening session.
sub listen_stop
{
	my ($l) = @_;
	$l->{in} .= "\\q\n";
	$l->{h}->finish;
	return;
}

# Rows where analytics.users differs from the same GROUP BY over the raw
# logs (both directions).
our $USERS_MISMATCHES = q{
WITH usr AS (SELECT customer_identifier, requests, cost FROM analytics.users),
raw_usr AS (SELECT c.customer_identifier, count(l.id), coalesce(sum(l.cost), 0)
              FROM analytics.customers c LEFT JOIN analytics.logs l USING (customer_identifier)
             GROUP BY 1)
SELECT (SELECT count(*) FROM (SELECT * FROM usr EXCEPT ALL SELECT * FROM raw_usr) a)
     + (SELECT count(*) FROM (SELECT * FROM raw_usr EXCEPT ALL SELECT * FROM usr) a)};

# Rows where the views differ from the same GROUP BY over the raw logs (both
# directions), whatever the worker has folded so far.
our $VIEW_MISMATCHES = q{
WITH dau AS (SELECT day, active_users, requests, cost FROM analytics.daily_active_users),
raw_dau AS (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(DISTINCT customer_identifier),
                   count(*), sum(cost)
              FROM analytics.logs WHERE customer_identifier IS NOT NULL GROUP BY 1),
cbu AS (SELECT day, customer_identifier, requests, prompt_tokens, completion_tokens, cost
          FROM analytics.cost_by_user),
raw_cbu AS (SELECT (created_at AT TIME ZONE 'UTC')::date, customer_identifier, count(*),
                   sum(prompt_tokens), sum(completion_tokens), sum(cost)
              FROM analytics.logs WHERE customer_identifier IS NOT NULL GROUP BY 1, 2),
usr AS (SELECT customer_identifier, requests, cost FROM analytics.users),
raw_usr AS (SELECT c.customer_identifier, count(l.id), coalesce(sum(l.cost), 0)
              FROM analytics.customers c LEFT JOIN analytics.logs l USING (customer_identifier)
             GROUP BY 1)
SELECT (SELECT count(*) FROM (SELECT * FROM dau EXCEPT ALL SELECT * FROM raw_dau) a)
     + (SELECT count(*) FROM (SELECT * FROM raw_dau EXCEPT ALL SELECT * FROM dau) a)
     + (SELECT count(*) FROM (SELECT * FROM cbu EXCEPT ALL SELECT * FROM raw_cbu) a)
     + (SELECT count(*) FROM (SELECT * FROM raw_cbu EXCEPT ALL SELECT * FROM cbu) a)
     + (SELECT count(*) FROM (SELECT * FROM usr EXCEPT ALL SELECT * FROM raw_usr) a)
     + (SELECT count(*) FROM (SELECT * FROM raw_usr EXCEPT ALL SELECT * FROM usr) a)};

# Rows where usage_daily plus the logs not folded yet (above the watermark
# or inside a gap) differ from the GROUP BY over all raw logs.
our $USAGE_MISMATCHES = q{
WITH tail AS (
  SELECT customer_identifier, (created_at AT TIME ZONE 'UTC')::date AS day, model,
         count(*) AS requests, count(*) FILTER (WHERE status_code >= 400) AS errors,
         sum(prompt_tokens) AS prompt_tokens, sum(cost) AS cost,
         count(latency) AS latency_count, coalesce(sum(latency), 0) AS latency_sum
    FROM analytics.logs
   WHERE (id > (SELECT watermark FROM analytics.rollup_state)
          OR EXISTS (SELECT 1 FROM analytics.rollup_gaps g WHERE id BETWEEN g.lo AND g.hi))
     AND customer_identifier IS NOT NULL
   GROUP BY 1, 2, 3),
combined AS (
  SELECT customer_identifier, day, model, sum(requests) AS requests, sum(errors) AS errors,
         sum(prompt_tokens) AS prompt_tokens, sum(cost) AS cost,
         sum(latency_count) AS latency_count, sum(latency_sum) AS latency_sum
    FROM (SELECT customer_identifier, day, model, requests, errors, prompt_tokens, cost,
                 latency_count, latency_sum FROM analytics.usage_daily
          UNION ALL SELECT * FROM tail) x
   GROUP BY 1, 2, 3),
raw AS (
  SELECT customer_identifier, (created_at AT TIME ZONE 'UTC')::date AS day, model,
         count(*) AS requests, count(*) FILTER (WHERE status_code >= 400) AS errors,
         sum(prompt_tokens) AS prompt_tokens, sum(cost) AS cost,
         count(latency) AS latency_count, coalesce(sum(latency), 0) AS latency_sum
    FROM analytics.logs WHERE customer_identifier IS NOT NULL
   GROUP BY 1, 2, 3)
SELECT count(*) FROM combined c FULL JOIN raw r USING (customer_identifier, day, model)
 WHERE c.requests IS DISTINCT FROM r.requests OR c.errors IS DISTINCT FROM r.errors
    OR c.prompt_tokens IS DISTINCT FROM r.prompt_tokens OR c.cost IS DISTINCT FROM r.cost
    OR c.latency_count IS DISTINCT FROM r.latency_count
    OR coalesce(abs(c.latency_sum - r.latency_sum) > 1e-9 * greatest(1, abs(r.latency_sum)), true)};

1;
