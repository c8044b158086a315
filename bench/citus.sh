# The --citus mode of bench/run.sh (sourced by it, after the single node has
# started): the dashboard reads and bulk ingest on the single node and on a
# Citus cluster of a coordinator and 2 workers on this machine, with the
# same data, side by side.  One database "bench" on each side; samples are
# kept on the single node (side baseline: the single node, ours: the
# cluster).  Table: figure, single node, cluster, cluster ÷ single, note.

CDB=bench
# The cluster's nodes: data directories in $TMP, loopback TCP between them
# (and the Unix socket in $TMP for psql and pgbench).
NODES=(coordinator worker1 worker2)
NODE_PORTS=(54330 54331 54332)
CPORT=${NODE_PORTS[0]}

# The settings every node shares: Citus before the library, logical WAL
# for shard moves, prepared transactions for Citus' two-phase commits,
# connections and worker processes for its executor.  The coordinator's
# records of two-phase commits (pg_dist_transaction) are kept, not
# recovered, so the bench can count them; Citus counts the connections
# its executor opens (citus_stat_counters).
CLUSTER_CONF="shared_preload_libraries = 'citus,analytics'
listen_addresses = '127.0.0.1'
wal_level = logical
max_prepared_transactions = 100
max_connections = 150
max_worker_processes = 32
citus.node_conninfo = 'sslmode=disable'
citus.recover_2pc_interval = -1
citus.enable_stat_counters = on
work_mem = 64MB"
# The single node's memory divided among three servers: the coordinator
# holds no shards (a quarter), each worker holds half of them (three
# eighths each).  work_mem is per sort or hash, not divided.
COORDINATOR_MEM="shared_buffers = 512MB
effective_cache_size = 4GB
maintenance_work_mem = 256MB
max_wal_size = 5GB
min_wal_size = 512MB
wal_buffers = 16MB"
WORKER_MEM="shared_buffers = 768MB
effective_cache_size = 6GB
maintenance_work_mem = 384MB
max_wal_size = 7680MB
min_wal_size = 768MB
wal_buffers = 24MB"

# on SIDE ARGS...: psql in database bench on the single node (single) or
# the coordinator (cluster).
on() {
	local side="$1"
	shift
	if [ "$side" = single ]; then qp "$PORT" $CDB "$@"; else qp "$CPORT" $CDB "$@"; fi
}

# ------------------------------------------------------- CPU of the servers
# The CPU time each server used while one side ran, from /proc: its
# postmaster, its live children and the children it has reaped.  Summed
# over the timed runs of a figure; the wall time is the client's, psql
# start-up included.

# The sums are kept per figure: CPU_FIG names the one being measured.
declare -A CPU_AT CPU_SUM
CPU_FIG=""

side_dirs() {
	if [ "$1" = single ]; then echo "$TMP/data"; else printf "$TMP/%s\n" "${NODES[@]}"; fi
}

cpu_ticks() {
	local pm
	pm="$(head -1 "$1/postmaster.pid")"
	# (a process may end between the glob and the read)
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$pm" '{
		pid = $1; s = $0; sub(/^.*\) /, "", s); split(s, f, " ")
		if (pid == pm) t += f[12] + f[13] + f[14] + f[15]
		else if (f[2] == pm) t += f[12] + f[13] } END { printf "%d\n", t }'
}

# machine_ticks: the CPU time the whole machine has been busy (every
# process, ours or not), from /proc/stat.
machine_ticks() {
	awk '$1 == "cpu" { printf "%d\n", $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

cpu_start() {
	local d
	for d in $(side_dirs "$1"); do CPU_AT[$d]=$(cpu_ticks "$d"); done
	CPU_AT[machine-$1]=$(machine_ticks)
	CPU_AT[wall-$1]=$(date +%s%N)
}

# cpu_stop SIDE: adds what SIDE's servers and the machine used since
# cpu_start, until 0.1 s after the run: the backends of the session that
# just ended exit and are reaped by then.
cpu_stop() {
	local d
	sleep 0.1
	CPU_SUM[$CPU_FIG:wall-$1]=$(( ${CPU_SUM[$CPU_FIG:wall-$1]:-0} + $(date +%s%N) - CPU_AT[wall-$1] ))
	CPU_SUM[$CPU_FIG:machine-$1]=$(( ${CPU_SUM[$CPU_FIG:machine-$1]:-0} + $(machine_ticks) - CPU_AT[machine-$1] ))
	for d in $(side_dirs "$1"); do
		CPU_SUM[$CPU_FIG:$d]=$(( ${CPU_SUM[$CPU_FIG:$d]:-0} + $(cpu_ticks "$d") - CPU_AT[$d] ))
	done
}

# cpu_note: CPU_NOTE, what the servers used during the figure's timed runs
# (CPU seconds in wall seconds, how many cores that is, and how many cores
# the whole machine had busy meanwhile); resets the sums.
cpu_note() {
	local hz side d parts total wall
	hz="$(getconf CLK_TCK)"
	CPU_NOTE="CPU"
	for side in single cluster; do
		wall="${CPU_SUM[$CPU_FIG:wall-$side]:-0}"
		[ "$wall" -gt 0 ] || continue
		parts="" total=0
		for d in $(side_dirs "$side"); do
			parts="$parts${parts:+ + }$(awk -v t="${CPU_SUM[$CPU_FIG:$d]:-0}" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')"
			total=$(( total + ${CPU_SUM[$CPU_FIG:$d]:-0} ))
			CPU_SUM[$CPU_FIG:$d]=0
		done
		[ "$side" = single ] || parts="$parts (coordinator + workers)"
		CPU_NOTE="$CPU_NOTE $side $parts s in $(awk -v w="$wall" 'BEGIN { printf "%.2f", w / 1e9 }') s$(awk -v t="$total" -v m="${CPU_SUM[$CPU_FIG:machine-$side]}" -v hz="$hz" -v w="$wall" \
			'BEGIN { printf " (%.2f cores; machine %.2f cores)", t / hz / (w / 1e9), m / hz / (w / 1e9) }')"
		[ "$side" = cluster ] || CPU_NOTE="$CPU_NOTE,"
		CPU_SUM[$CPU_FIG:wall-$side]=0
		CPU_SUM[$CPU_FIG:machine-$side]=0
	done
}

# connections: how many connections to the workers the coordinator's
# executor has opened in database bench.
connections() {
	qp "$CPORT" $CDB -c "SELECT connection_establishment_succeeded FROM pg_catalog.citus_stat_counters WHERE name = current_database()"
}

# prepared_count: the prepared transactions of two-phase commits the
# coordinator has recorded (one per connection to a worker that wrote).
prepared_count() {
	qp "$CPORT" $CDB -c "SELECT count(*) FROM pg_dist_transaction"
}

# cfig KEY LABEL KIND NOTE: the medians of KEY as a row; KIND rate or time;
# the ratio is the cluster's figure over the single node's.
cfig() {
	local key="$1" label="$2" kind="$3" note="$4"
	q $CDB -F $'\t' -c "
		SELECT \$l\$$label\$l\$, bench.fmt(baseline, '$kind'), bench.fmt(ours, '$kind'),
		       round((ours / baseline)::numeric, 2) || '×', \$n\$$note\$n\$
		FROM bench.medians(\$f\$$key\$f\$)" >>"$ROWS"
}

# ----------------------------------------------------------------- set-up

citus_single_setup() {
	newdb $CDB
	q $CDB <"$BENCH_DIR/sql/views.sql"
}

# Before CREATE EXTENSION analytics on the coordinator: Citus on every
# node, the coordinator and the workers in the coordinator's metadata.
citus_nodes() {
	local i
	for i in 0 1 2; do
		qp "${NODE_PORTS[$i]}" $CDB -c "CREATE EXTENSION citus"
	done
	qp "$CPORT" $CDB -c "SELECT citus_set_coordinator_host('127.0.0.1', $CPORT)" >/dev/null
	for i in 1 2; do
		qp "$CPORT" $CDB -c "SELECT citus_add_node('127.0.0.1', ${NODE_PORTS[$i]})" >/dev/null
	done
}

citus_cluster_setup() {
	local i
	start_server "$TMP/coordinator" "$CPORT" "$CLUSTER_CONF
$COORDINATOR_MEM"
	for i in 1 2; do
		start_server "$TMP/${NODES[$i]}" "${NODE_PORTS[$i]}" "$CLUSTER_CONF
$WORKER_MEM"
		run_as "$PGBIN/createdb" -h "$TMP" -p "${NODE_PORTS[$i]}" $CDB
	done
	newdb $CDB "$CPORT" citus_nodes
	qp "$CPORT" $CDB -c "SELECT analytics.distribute()" >/dev/null
	qp "$CPORT" $CDB <"$BENCH_DIR/sql/views.sql"
	# The same view cases on both sides (their dates come from now()).
	q $CDB -c "COPY bench.view_cases TO '$TMP/view_cases.csv'"
	qp "$CPORT" $CDB -c "TRUNCATE bench.view_cases" -c "COPY bench.view_cases FROM '$TMP/view_cases.csv'"
	echo "cluster: $(qp "$CPORT" $CDB -c "SELECT string_agg(nodename || ':' || nodeport || CASE WHEN shouldhaveshards THEN '' ELSE ' (no shards)' END, ', ' ORDER BY nodeid) FROM pg_dist_node"); Citus $(qp "$CPORT" $CDB -c "SELECT extversion FROM pg_extension WHERE extname = 'citus'"); logs in $(qp "$CPORT" $CDB -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'analytics.logs'::regclass") shards" >>"$NOTES"
}

# The data: generated once on the single node with a fixed seed into CSV
# files, loaded into both sides from the same files.  ref.csv: the
# reference logs for the views (cost left to the trigger); src.csv: the
# bulk-load sample (cost included, as in the single-node figures).
citus_data() {
	local side
	q $CDB -o /dev/null -c "SELECT setseed(0.1)" \
		-c "COPY ($(q $CDB -c "SELECT bench.gen_logs_sql($NLOGS, $NCUST, false)")) TO '$TMP/ref.csv' WITH (FORMAT csv)"
	q $CDB -o /dev/null -c "SELECT setseed(0.2)" \
		-c "COPY ($(q $CDB -c "SELECT bench.gen_logs_sql($NBULK, $NCUST, true)")) TO '$TMP/src.csv' WITH (FORMAT csv)"
	for side in single cluster; do
		on $side -o /dev/null -c "SELECT bench.gen_customers($NCUST)"
		on $side -c "CREATE TABLE bench.ref_logs AS $(q $CDB -c "SELECT bench.gen_logs_sql(0, $NCUST, false)")" \
			-c "CREATE TABLE bench.src_logs (LIKE bench.ref_logs)" \
			-c "COPY bench.ref_logs FROM '$TMP/ref.csv' WITH (FORMAT csv)" \
			-c "COPY bench.src_logs FROM '$TMP/src.csv' WITH (FORMAT csv)" \
			-c "ANALYZE bench.ref_logs" -c "ANALYZE bench.src_logs"
		batch_payloads "$(side_port $side)" $CDB
	done
}

side_port() {
	if [ "$1" = single ]; then echo "$PORT"; else echo "$CPORT"; fi
}

# csettle SIDE: fold every pending log (on the cluster each worker node folds
# its own shards, both at once) and checkpoint every server of the side.
csettle() {
	local i pids=()
	if [ "$1" = single ]; then
		settle $CDB
		return
	fi
	for i in 1 2; do
		qp "${NODE_PORTS[$i]}" $CDB -c "DO \$\$ BEGIN
			FOR i IN 1 .. 1000 LOOP EXIT WHEN coalesce(analytics.rollup_now(), 0) = 0; END LOOP; END \$\$" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	for i in 0 1 2; do qp "${NODE_PORTS[$i]}" $CDB -c "CHECKPOINT"; done
}

# logs_summary SIDE: what both sides must agree on once the same logs are in.
logs_summary() {
	on "$1" -c "SELECT count(*) || ' logs, ' || count(DISTINCT customer_identifier) || ' customers, cost '
	                   || sum(cost) || ', tokens ' || sum(total_tokens) FROM analytics.logs"
}

# ------------------------------------------------------------ reference data

# citus_ref_load: the reference logs through the trigger (INSERT … SELECT
# from the staging table; on the cluster through the coordinator), then the
# fold-in, each timed; both sides must then hold the same logs.
citus_ref_load() {
	local side ms a b
	# One side after the other, each folded before the other loads: the
	# other side's background workers must not fold meanwhile.
	for side in single cluster; do
		CPU_FIG=load
		cpu_start $side
		ms="$(on $side -c "SELECT bench.time_exec(format('INSERT INTO analytics.logs (%1\$s) SELECT %1\$s FROM bench.ref_logs', bench.log_columns()))")"
		cpu_stop $side
		sample $CDB "ref load" "$(side_of $side)" 1 "$(awk -v n="$NLOGS" -v ms="$ms" 'BEGIN { printf "%.1f", n / ms * 1000 }')"
		CPU_FIG=fold
		cpu_start $side
		a=$(date +%s%N)
		csettle $side
		b=$(date +%s%N)
		cpu_stop $side
		sample $CDB "fold" "$(side_of $side)" 1 "$(( (b - a) / 1000000 ))"
	done
	CPU_FIG=load
	cpu_note
	cfig "ref load" "load $NLOGS reference logs through the trigger (INSERT … SELECT)" rate \
		"one statement from a staging table (on the cluster, a local table of the coordinator); no budgets; $CPU_NOTE"
	CPU_FIG=fold
	cpu_note
	CPU_FIG=""
	cfig "fold" "fold-in after the load (wall time)" time \
		"right after the side's load: rollup_now() until nothing is pending (on the cluster on both worker nodes at once), checkpoints included; the background workers fold too; $CPU_NOTE"
	for side in single cluster; do on $side -c "VACUUM ANALYZE"; done
	a="$(logs_summary single)"
	b="$(logs_summary cluster)"
	if [ "$a" != "$b" ]; then
		echo "bench: the sides hold different logs: single node $a; cluster $b" >&2
		return 1
	fi
	echo "same logs on both sides: $a" >>"$NOTES"
}

side_of() {
	if [ "$1" = single ]; then echo baseline; else echo ours; fi
}

# ----------------------------------------------------------------- views

# citus_view ORD NAME COLUMN: the query COLUMN (ours: the view, raw: its
# GROUP BY over the raw logs) of view case ORD on both sides: the results
# compared, then timed (bench.time_exec_twice: planned and run in the
# server, every row computed, none sent; the figure is the second run in
# the session, the first is in the note), the sides alternating.  A side
# that fails shows its error in its cell.
citus_view() {
	local ord="$1" name="$2" col="$3" key="$3 $1" label side rep s d=() n=() err=() ok=1 note c0 c1=""
	if [ "$col" = ours ]; then label="view: $name"; else label="raw GROUP BY of: $name"; fi
	for side in single cluster; do
		if s="$(on $side -F ' ' -c "SELECT d.* FROM bench.view_cases, bench.result_digest($col) d WHERE ord = $ord" 2>"$TMP/view.err")"; then
			d+=("${s% *}") n+=("${s##* }") err+=("")
		else
			d+=("") n+=("") err+=("error: $(grep -m1 ERROR "$TMP/view.err" | sed 's/^.*ERROR: *//' | cut -c1-160)")
			cat "$TMP/view.err" >&2
			ok=""
		fi
	done
	if [ -z "$ok" ]; then
		row "$label" "${err[0]:-ok}" "${err[1]:-ok}" "" ""
		return
	fi
	for rep in $(seq 1 "$REPS"); do
		for side in $([ $(( rep % 2 )) = 1 ] && echo single cluster || echo cluster single); do
			cpu_start $side
			[ $side = single ] || c0="$(connections)"
			s="$(on $side -F ' ' -c "SELECT t.* FROM bench.view_cases, bench.time_exec_twice($col) t WHERE ord = $ord")"
			cpu_stop $side
			[ $side = single ] || c1="$c1${c1:+, }$(( $(connections) - c0 ))"
			sample $CDB "$key first" "$(side_of $side)" "$rep" "${s% *}"
			sample $CDB "$key" "$(side_of $side)" "$rep" "${s#* }"
		done
	done
	if [ "${d[0]}" = "${d[1]}" ]; then
		note="same result on both (${n[0]} rows)"
	else
		note="RESULTS DIFFER: ${n[0]} rows on the single node, ${n[1]} on the cluster"
	fi
	cpu_note
	cfig "$key" "$label" time "$note; first run in a fresh session $(q $CDB -c "
		SELECT 'single ' || round(baseline::numeric, 1) || ' ms, cluster ' || round(ours::numeric, 1) || ' ms'
		FROM bench.medians(\$f\$$key first\$f\$)"); connections the coordinator opened to the workers per session (both runs): $c1; $CPU_NOTE"
}

citus_views() {
	local ord name requires
	while IFS=$'\t' read -r ord name requires <&3; do
		if ! has $CDB "$requires"; then
			row "view: $name" "n/a (missing: ${requires%(})" "" "" ""
			continue
		fi
		citus_view "$ord" "$name" ours
		citus_view "$ord" "$name" raw
	done 3< <(q $CDB -F $'\t' -c "SELECT ord, name, requires FROM bench.view_cases ORDER BY ord")
}

# ------------------------------------------------------------ write path

# citus_write KEY LABEL NOTE STATEMENT: NBULK logs written by STATEMENT
# ({cols} stands for the column list) on each side, REPS times, the order
# alternating, each run after a fold-in and checkpoints; checked to add
# NBULK logs.
citus_write() {
	local key="$1" label="$2" note="$3" stmt="$4" rep side ms before after prep0 prep1
	prep0="$(prepared_count)"
	stmt="${stmt//\{cols\}/$(q $CDB -c "SELECT bench.log_columns()")}"
	for rep in $(seq 1 "$REPS"); do
		for side in $([ $(( rep % 2 )) = 1 ] && echo single cluster || echo cluster single); do
			csettle $side
			before="$(on $side -c "SELECT count(*) FROM analytics.logs")"
			cpu_start $side
			ms="$(on $side -c "SELECT bench.time_exec(\$s\$$stmt\$s\$)")"
			cpu_stop $side
			after="$(on $side -c "SELECT count(*) FROM analytics.logs")"
			if [ $(( after - before )) -ne "$NBULK" ]; then
				echo "bench: $key on the $side side recorded $(( after - before )) logs, expected $NBULK" >&2
				return 1
			fi
			sample $CDB "$key" "$(side_of $side)" "$rep" "$(awk -v n="$NBULK" -v ms="$ms" 'BEGIN { printf "%.1f", n / ms * 1000 }')"
		done
	done
	prep1="$(prepared_count)"
	cpu_note
	cfig "$key" "$label" rate "$note; $(two_phase "$prep0" "$prep1"); $CPU_NOTE"
}

# two_phase BEFORE AFTER: the prepared transactions between two counts.
two_phase() {
	echo "prepared transactions (two-phase commit, one per connection to a worker that wrote) recorded on the coordinator: $(( $2 - $1 )) in $REPS runs"
}

citus_bulk_insert() {
	citus_write "bulk insert" "bulk ingest, INSERT … SELECT" \
		"$NBULK logs in one statement from a staging table (on the cluster, a local table of the coordinator)" \
		"INSERT INTO analytics.logs ({cols}) SELECT {cols} FROM bench.src_logs"
}

citus_bulk_copy() {
	citus_write "bulk copy" "bulk ingest, COPY (CSV)" "$NBULK logs, server-side COPY (on the cluster, into the coordinator)" \
		"COPY analytics.logs ({cols}) FROM '$TMP/src.csv' WITH (FORMAT csv)"
}

citus_ingest_batch() {
	if ! has $CDB 'analytics.ingest_batch('; then
		row "analytics.ingest_batch" "n/a (missing: analytics.ingest_batch)" "" "" ""
		return
	fi
	citus_write "batch" "analytics.ingest_batch" "$NBULK logs as NDJSON, 1000 per call, one transaction" \
		"SELECT sum(analytics.ingest_batch(t)) FROM bench.batch_payloads"
}

# 2 pgbench clients, one log of a random customer per transaction, on the
# single node and through the coordinator.
citus_single_row() {
	local rep side tps prep0 prep1
	declare -A lat
	prep0="$(prepared_count)"
	for rep in $(seq 1 "$REPS"); do
		for side in $([ $(( rep % 2 )) = 1 ] && echo single cluster || echo cluster single); do
			csettle $side
			cpu_start $side
			tps="$(pgbench_run analytics.logs "$(side_port $side)" $CDB)"
			cpu_stop $side
			sample $CDB single "$(side_of $side)" "$rep" "$tps"
			lat[$side]="${lat[$side]:-}${lat[$side]:+, }$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' "$TMP/pgbench.out")"
		done
	done
	prep1="$(prepared_count)"
	cpu_note
	cfig single "single-row INSERT, 2 pgbench clients" rate \
		"$PGBENCH_T s runs, 1 log per transaction, random customer, synchronous_commit $SYNC; on the cluster through the coordinator; pgbench's latency average per run: single ${lat[single]} ms, cluster ${lat[cluster]} ms; $(two_phase "$prep0" "$prep1"); $CPU_NOTE"
}

# ------------------------------------------------------------------ plans

# The plan of two views on each side (EXPLAIN ANALYZE; Citus shows one of
# its tasks), for the results file.
citus_plans() {
	local ord side
	for ord in 1 6; do
		for side in single cluster; do
			{
				echo
				echo "$side, $(q $CDB -c "SELECT name FROM bench.view_cases WHERE ord = $ord"):"
				echo
				echo '```'
				on $side -c "SELECT 'EXPLAIN (ANALYZE, COSTS OFF) ' || ours || ';' FROM bench.view_cases WHERE ord = $ord" \
					| on $side 2>&1 || true
				echo '```'
			} >>"$TMP/plans.md"
		done
	done
}

citus_run() {
	: >"$TMP/plans.md"
	step "single node: setup" citus_single_setup
	step "cluster: setup (a coordinator and 2 workers, distribute())" citus_cluster_setup
	step "the data" citus_data
	step "reference logs: load and fold-in" citus_ref_load
	step "views" citus_views
	step "bulk INSERT … SELECT" citus_bulk_insert
	step "bulk COPY" citus_bulk_copy
	step "ingest_batch" citus_ingest_batch
	step "single-row INSERTs" citus_single_row
	step "plans" citus_plans
}

# citus_report: the results file of the --citus mode.
citus_report() {
	report_head "analytics benchmark on Citus, scale $SCALE" "bench/run.sh --citus --scale $SCALE"
	echo "$NCUST customers, $NLOGS reference logs, bulk loads of $NBULK logs, pgbench runs of ${PGBENCH_T} s;" \
		"median of $REPS runs per side, the sides alternating."
	echo "Single node: one server, shared_buffers 2GB, effective_cache_size 16GB, maintenance_work_mem 1GB," \
		"max_wal_size 20GB. Cluster: a coordinator (no shards) and 2 workers on the same machine, loopback TCP" \
		"without SSL, the same memory divided: coordinator shared_buffers 512MB, effective_cache_size 4GB," \
		"maintenance_work_mem 256MB, max_wal_size 5GB; each worker 768MB, 6GB, 384MB, 7.5GB. work_mem 64MB," \
		"jit off, synchronous_commit on everywhere."
	echo
	report_notes ""
	echo
	echo "Ratio: the cluster's figure over the single node's (rates: above 1× the cluster is faster;" \
		"times: above 1× it is slower). Notes give the CPU each side's servers used during the timed runs" \
		"(from /proc: each server's processes, and the whole machine's busy time, ours or not; from the client's" \
		"start to 0.1 s after its return, so that the session's backends are reaped: this includes the start of" \
		"the background fold of what a write committed)."
	echo
	report_table figure "single node" cluster "cluster ÷ single" note
	echo
	echo "## Plans"
	cat "$TMP/plans.md"
}
