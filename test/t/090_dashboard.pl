# The dashboard (dashboard/, SPEC section 16) in a browser: loads known
# traffic (40 customers over 20 days up to now, two of them with the same
# name, one whose identifier is not a plain word), builds the site as a role
# that has only analytics_reader (a superuser is refused), opens it in
# headless Chromium (dashboard/test/browser.js) and checks what a person
# would: the top-users bars are analytics.top_users (names, values, bar
# lengths), the daily and weekly active users are the views' series with
# only the current day and week marked partial, the cards and the first
# rows of the Users table are analytics.users, a customer's page shows that
# customer's figures and latest logs, no page error, no request to another
# host.  Every expected value comes from SQL run here.  Screenshots go to
# tmp_check/dashboard/.
#
# Needs node, the npm packages of dashboard/ (npm ci) and chromium, which
# scripts/test.sh installs; without them the test fails under CI and is
# skipped elsewhere.
use strict;
use warnings;

use AnalyticsTest;
use Digest::SHA qw(sha256_hex);
use FindBin;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dashboard = "$FindBin::RealBin/../../dashboard";
my $chromium  = $ENV{CHROMIUM} // '/usr/bin/chromium';
my @missing;
push @missing, 'node' unless grep { -x "$_/node" } split /:/, $ENV{PATH};
push @missing, "chromium ($chromium)" unless -x $chromium;
push @missing, 'the npm packages of dashboard/ (npm ci)'
  unless -d "$dashboard/node_modules/puppeteer-core";
if (@missing)
{
	my $why = 'missing ' . join(', ', @missing) . ': run bash scripts/test.sh, which installs them';
	if ($ENV{CI})
	{
		fail($why);
		done_testing();
		exit;
	}
	plan skip_all => $why;
}

my $node = analytics_node('dashboard');
$node->safe_psql('postgres', 'CREATE DATABASE shop');
my $db = 'shop';

# query(SQL): the result of SQL as the superuser, dying on error.
sub query { return $node->safe_psql($db, $_[0]); }

# rows(SQL): the rows of SQL, each an array of its fields.
sub rows
{
	return map { [ split /\|/, $_, -1 ] } grep { $_ ne '' } split /\n/, query($_[0]);
}

query(<<'SQL');
CREATE EXTENSION analytics;
CREATE ROLE dashboard_reader LOGIN IN ROLE analytics_reader;
-- 40 customers; cust_7 and cust_8 share a name; the second heaviest has an
-- identifier with a space and a slash.
SELECT count(analytics.upsert_customer(jsonb_build_object(
           'customer_identifier', CASE i WHEN 2 THEN 'acme/ops team' ELSE 'cust_' || i END,
           'name', CASE WHEN i IN (7, 8) THEN 'Sam Lee' ELSE 'Customer ' || i END,
           'email', 'c' || i || '@example.com')))
  FROM generate_series(1, 40) i;
UPDATE analytics.customers SET period_budget = 500, budget_duration = 'monthly',
       period_start = date_trunc('month', now()) WHERE customer_identifier = 'cust_1';
-- Day d (0 = today) of customer i: 1 to 5 logs on the days where
-- (i + d) % 4 <> 0 and i <= 25 + (d * 7) % 16, costs with 4 decimals,
-- heavier for lower i.  Today's logs are at now() (so still today whatever
-- the hour).
SET analytics.budget_enforcement = record;
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens,
                            completion_tokens, cost, latency, status_code)
SELECT CASE WHEN d = 0 THEN now()
            ELSE date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                 - d * interval '1 day' + (i * 13 + k * 7) % 1380 * interval '1 minute' END,
       CASE i WHEN 2 THEN 'acme/ops team' ELSE 'cust_' || i END,
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4'])[1 + (i + d + k) % 3],
       100 + (i * 31 + d * 17 + k) % 900, 20 + (i * 7 + d * 11 + k) % 400,
       round(((41 - i) * 0.0123 + (d % 7) * 0.0011 + k * 0.0007)::numeric, 4),
       0.5 + ((i + k) % 10) * 0.1, CASE WHEN (i + d + k) % 17 = 0 THEN 500 ELSE 200 END
  FROM generate_series(1, 40) i, generate_series(0, 19) d,
       LATERAL generate_series(1, 1 + (i * 7 + d * 3) % 5) k
 WHERE (i + d) % 4 <> 0 AND i <= 25 + (d * 7) % 16;
RESET analytics.budget_enforcement;
SQL
my ($logs, $customers) = split /\|/,
  query('SELECT count(*), count(DISTINCT customer_identifier) FROM analytics.logs');
note "$logs logs of $customers customers";

# build(USER): runs dashboard/build.js as USER; (exit status, output).
sub build
{
	my ($user) = @_;
	local %ENV = (%ENV, PGHOST => $node->host, PGPORT => $node->port, PGDATABASE => $db, PGUSER => $user,
		NO_COLOR => '1');
	my $out = '';
	IPC::Run::run([ 'node', "$dashboard/build.js" ], '<', \undef, '>&', \$out);
	my $ret = $? >> 8;
	# Colours, which some tools turn on when CI is set, whatever NO_COLOR says.
	$out =~ s/\e\[[0-9;]*m//g;
	return ($ret, $out);
}

# A role that can do more than read is refused.
my ($ret, $out) = build($node->safe_psql('postgres', 'SELECT current_user'));
isnt($ret, 0, 'a build as the superuser fails');
like($out, qr/reads as a role with analytics_reader and nothing more/, 'and says which role to use');

($ret, $out) = build('dashboard_reader');
is($ret, 0, 'the build as a role with only analytics_reader succeeds')
  or diag(substr($out, -3000));
like($out, qr/built \d+ pages/, 'it built the pages');
unlike($out, qr{https?://}, 'the build fetched nothing from another host');

# The customer whose page is opened: the second by cost, whose identifier
# is not a plain word, so its page is named by a hash (lib/db.js slug()).
my ($visit) = rows(
	"SELECT customer_identifier FROM analytics.top_users(NULL, NULL, 'cost', 100) WHERE rank = 2");
$visit = $visit->[0];
is($visit, 'acme/ops team', 'the second by cost is the customer with a space and a slash');
my $slug = '~' . substr(sha256_hex($visit), 0, 32);

my $shots = "$PostgreSQL::Test::Utils::tmp_check/dashboard";
my $report_json = '';
my $stderr      = '';
IPC::Run::run(
	[
		'node', "$dashboard/test/browser.js", '--customer', $slug, '--out', $shots,
		'--chromium', $chromium
	],
	'<', \undef, '>', \$report_json, '2>', \$stderr);
is($? >> 8, 0, 'the browser opened every page') or diag($stderr);
my $r = eval { decode_json($report_json) } // BAIL_OUT("no report from the browser: $stderr");

is_deeply($r->{pageErrors},    [], 'no page error');
is_deeply($r->{consoleErrors}, [], 'no error in the console');
is_deeply($r->{failed},        [], 'no request failed');
is_deeply($r->{external},      [], 'no request to another host');
ok($r->{probeSeen}, 'a request to another host would have been seen');

# numbers(TEXT): the digits of a figure as shown ("$1,234.5678" -> 1234.5678).
sub number { my $t = shift; $t =~ s/[\$,]//g; return $t; }

# near(A, B): equal figures (the page's numbers went through a double).
sub near { my ($a, $b) = @_; return abs($a - $b) <= 1e-9 * (1 + abs($b)); }

# field(TITLE, NAME): the value of "NAME value" in a bar's title.
sub field
{
	my ($title, $name) = @_;
	return $title =~ /^\Q$name\E (.*)$/m ? $1 : undef;
}

# Top users: the bars are analytics.top_users in rank order.
my @top = rows(
	"SELECT customer_identifier, coalesce(name || ' (' || customer_identifier || ')', customer_identifier), cost
	   FROM analytics.top_users ORDER BY rank, customer_identifier");
my @bars = @{ $r->{overview}{topUsers} };
is(scalar @bars, scalar @top, 'one top-users bar per row of analytics.top_users (' . scalar(@top) . ')');
is_deeply([ map { (split /\n/, $_->{title})[0] } @bars ], [ map { $_->[0] } @top ],
	'the bars are the customers of analytics.top_users, in rank order');
is_deeply($r->{overview}{topUserLabels}, [ map { $_->[1] } @top ], 'labelled with their names and identifiers');
my @bad = grep { !near(field($bars[$_]{title}, 'cost'), $top[$_][2]) } 0 .. $#top;
is_deeply(\@bad, [], 'each bar\'s value is the customer\'s cost');
@bad = grep { abs($bars[$_]{width} / $bars[0]{width} - $top[$_][2] / $top[0][2]) > 0.01 } 0 .. $#top;
is_deeply(\@bad, [], 'each bar\'s length is in proportion to its cost');
note sprintf('top users: %s', join ', ', map { "$_->[0] $_->[2]" } @top[ 0 .. 2 ]);

# Daily active users: the last 30 days of analytics.daily_active_users,
# today marked partial.
my @dau = rows(
	"SELECT day, active_users, is_partial FROM analytics.daily_active_users
	  WHERE day >= (now() AT TIME ZONE 'UTC')::date - 29 ORDER BY day");
my @dau_bars = @{ $r->{overview}{dau} };
is_deeply(
	[ map { [ (split /\n/, $_->{title})[0], field($_->{title}, 'active users'), ($_->{title} =~ /^partial$/m ? 't' : 'f') ] } @dau_bars ],
	\@dau,
	'the DAU bars are analytics.daily_active_users (' . scalar(@dau) . ' days), with is_partial');
is(scalar(grep { $_->[2] eq 't' } @dau), 1, 'one day is partial');
is($dau[-1][2], 't', 'the last one, today');
isnt($dau_bars[-1]{fill}, $dau_bars[-2]{fill}, 'today\'s bar is drawn apart');
ok(scalar(grep { $_ eq 'today' } @{ $r->{overview}{dauNotes} }), 'and labelled');

# Weekly active users: the last 12 weeks (from Monday), the current one
# partial.
my @wau = rows(
	"SELECT bucket_start, active_users, is_partial FROM analytics.active_users(
	     (date_trunc('week', now() AT TIME ZONE 'UTC') - interval '11 weeks') AT TIME ZONE 'UTC', now(), 'week')");
is_deeply(
	[ map { [ ($_->{title} =~ /^week of (\S+)/)[0], field($_->{title}, 'active users'), ($_->{title} =~ /^partial$/m ? 't' : 'f') ] } @{ $r->{overview}{wau} } ],
	\@wau,
	'the WAU bars are analytics.active_users by week, the current week partial');

# Daily cost of the top users: one bar segment per (day, customer) row.
my ($segments) = rows(
	"SELECT count(*), sum(cost) FROM analytics.cost_by_user
	  WHERE day >= (now() AT TIME ZONE 'UTC')::date - 29
	    AND customer_identifier IN (SELECT customer_identifier FROM analytics.top_users)");
my @seg = @{ $r->{overview}{costByUser} };
is(scalar @seg, $segments->[0], "the cost chart has a segment per day and top user ($segments->[0])");
my $seg_sum = 0;
$seg_sum += field($_->{title}, 'cost') for @seg;
ok(near($seg_sum, $segments->[1]), "adding up to their cost ($segments->[1])");

# Summary cards.
my ($summary) = rows(
	"SELECT (SELECT count(*) FROM analytics.customers), sum(requests), sum(cost)
	   FROM analytics.daily_active_users WHERE day >= (now() AT TIME ZONE 'UTC')::date - 29");
my $cards = $r->{overview}{cards};
is(number($cards->{customers}), $summary->[0], 'the customers card');
is(number($cards->{requests}),  $summary->[1], 'the requests card (30 days)');
ok(near(number($cards->{cost}), sprintf('%.4f', $summary->[2])), 'the cost card (30 days)');

# The Users table: its first rows are analytics.users by cost.
my @users = rows(
	"SELECT coalesce(name || ' (' || customer_identifier || ')', customer_identifier), requests, round(cost, 4)
	   FROM analytics.users ORDER BY cost DESC, customer_identifier LIMIT 10");
my %col;
@col{ @{ $r->{users}{header} } } = 0 .. $#{ $r->{users}{header} };
is_deeply(
	[ map { [ $_->[ $col{customer} ], number($_->[ $col{requests} ]), number($_->[ $col{cost} ]) ] } @{ $r->{users}{rows} } ],
	\@users,
	'the first 10 rows of the Users table are analytics.users by cost');
# Its per month and cache hits columns: average_monthly_cost in USD to 4
# decimals, cache_hit_rate as a percentage to 1 decimal ("–" for null).
my @extra = rows(
	"SELECT coalesce(average_monthly_cost::text, '-'), coalesce(cache_hit_rate::text, '-')
	   FROM analytics.users ORDER BY cost DESC, customer_identifier LIMIT 10");
my @shown = map { [ $_->[ $col{'per month'} ], $_->[ $col{'cache hits'} ] ] } @{ $r->{users}{rows} };
# shows(SHOWN, VALUE, SCALE, HALF_UNIT): SHOWN is VALUE * SCALE rounded to
# HALF_UNIT * 2, or "–" for a null VALUE ("-" from psql).
my $shows = sub {
	my ($shown, $value, $scale, $half) = @_;
	return $shown eq "\x{2013}" if $value eq '-';
	$shown =~ s/[\$,%]//g;
	return $shown =~ /^[0-9.]+$/ && abs($shown - $value * $scale) <= $half + 1e-9;
};
is(scalar(grep { !$shows->($shown[$_][0], $extra[$_][0], 1, 0.00005) || !$shows->($shown[$_][1], $extra[$_][1], 100, 0.05) }
		  0 .. $#extra),
	0,
	'the per month and cache hits columns are average_monthly_cost and cache_hit_rate')
  or diag explain [ \@shown, \@extra ];

# The customer's page.
my ($u) = rows(
	"SELECT coalesce(name, customer_identifier), requests, round(cost, 4), total_tokens, round(period_spend, 4)
	   FROM analytics.users WHERE customer_identifier = '$visit'");
my $c = $r->{customer};
is($c->{title}, $u->[0], "the page of $visit has its name");
is_deeply([ map { number($c->{cards}{$_}) } qw(requests cost tokens) ], [ @$u[ 1 .. 3 ] ],
	'its requests, cost and tokens');
like($c->{budget}, qr/spent \$\Q$u->[4]\E in the current period/, 'its spend in the budget period');
my @ids = map { $_->[0] } rows(
	"SELECT id FROM analytics.customer_logs('$visit', lim => 20)");
my %lcol;
@lcol{ @{ $c->{logHeader} } } = 0 .. $#{ $c->{logHeader} };
is_deeply([ map { $_->[ $lcol{id} ] } @{ $c->{logs} } ], \@ids, 'its 20 latest logs, newest first');
my ($usage) = rows(
	"SELECT count(*), sum(c) FROM (SELECT (created_at AT TIME ZONE 'UTC')::date, model, sum(cost) AS c
	   FROM analytics.logs WHERE customer_identifier = '$visit'
	    AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '29 days'
	  GROUP BY 1, 2) x");
my $usage_sum = 0;
$usage_sum += field($_->{title}, 'cost') for @{ $c->{usage} };
is(scalar @{ $c->{usage} }, $usage->[0], "its usage chart has a segment per day and model ($usage->[0])");
ok(near($usage_sum, $usage->[1]), "adding up to its cost over the 30 days ($usage->[1])");

for my $shot (qw(overview users customer))
{
	ok(-s "$shots/$shot.png", "screenshot $shots/$shot.png");
}

done_testing();
