#!/bin/bash
# The whole test suite: set up (packages, build, install), then, as an
# unprivileged user on a writable copy of the tree, `make installcheck`
# (pg_regress and isolation specs against temporary instances that preload
# the library, the worker off; then the TAP tests test/t/NNN_name.pl, one
# make call each, on clusters of their own: worker, stress, stalls, fuzzing,
# upgrade, Citus, which prove reports as skipped, with the reason, when
# citus.so is not installed).  Prints the diffs or the TAP logs of a failure, ends with "N
# passed, M failed" (every regression test, spec and TAP script counts one)
# and exits non-zero on a failure.
#
#   bash scripts/test.sh              everything
#   bash scripts/test.sh NAME...      only the named tests: regression tests
#                                     (test/sql/NAME.sql), isolation specs
#                                     (test/specs/NAME.spec) and TAP tests
#                                     (test/t/NNN_NAME.pl, named with or
#                                     without the NNN_ prefix)
#
# FUZZ_SEED, FUZZ_SECONDS, FUZZ_MAX (test/t/040_fuzz.pl) and STALL_BULK_LOGS
# (test/t/030_stall.pl) pass through to the tests.
set -euo pipefail
# One suite at a time per installation of PostgreSQL: the library is
# installed into it (PGBIN, scripts/setup.sh).
source "$(dirname "${BASH_SOURCE[0]}")/lock.sh"
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

# The browser test (test/t/090_dashboard.pl) needs node, the dashboard's
# npm packages and chromium.
case " $* " in
"  " | *" dashboard "* | *" 090_dashboard "*) setup_dashboard --browser ;;
esac

WORK="${ANALYTICS_TEST_DIR:-/tmp/analytics-test-$(basename "$ROOT")}"
work_copy "$WORK"
cd "$WORK"

passed=0
failed=0
status=0

# Regression tests and isolation specs run as two make calls, so that a
# failure in one still runs the other.
export PATH="$PGBIN:$PATH"
: >installcheck.log
only_regress=() only_iso=() only_tap=()
for name in "$@"; do
	tap=(test/t/[0-9][0-9][0-9]_"${name#[0-9][0-9][0-9]_}".pl)
	if [ -f "test/sql/$name.sql" ]; then only_regress+=("$name")
	elif [ -f "test/specs/$name.spec" ]; then only_iso+=("$name")
	elif [ -f "${tap[0]}" ]; then only_tap+=("${tap[0]}")
	else echo "no test named $name" >&2; exit 2
	fi
done
# installcheck_part ARGS...: one make installcheck call with these variables.
installcheck_part() {
	echo "== make installcheck $*"
	if run_as make -s PG_CONFIG="$PG_CONFIG" "$@" installcheck 2>&1 | tee -a installcheck.log; [ "${PIPESTATUS[0]}" -eq 0 ]; then
		:
	else
		status=1
	fi
}
taps=(test/t/*.pl)
if [ $# -eq 0 ]; then
	installcheck_part "ISOLATION=" "TAP_TESTS="
	installcheck_part "REGRESS=" "TAP_TESTS="
else
	[ ${#only_regress[@]} -eq 0 ] || installcheck_part "ISOLATION=" "TAP_TESTS=" "REGRESS=${only_regress[*]}"
	[ ${#only_iso[@]} -eq 0 ] || installcheck_part "REGRESS=" "TAP_TESTS=" "ISOLATION=${only_iso[*]}"
	taps=("${only_tap[@]}")
fi
for f in regression.diffs output_iso/regression.diffs; do
	[ -f "$f" ] && { echo "== $f"; cat "$f"; }
done
passed=$(grep -cE '\.\.\. ok' installcheck.log || true)
failed=$(grep -cE '\.\.\. FAILED' installcheck.log || true)
# A make call that failed before any test ran (a missing expected file, a
# server that did not start) still counts as a failure.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1
fi

# The upgrade test (test/t/NNN_upgrade.pl) starts from the released versions
# listed in test/releases, built from their commits.  The work copy has no
# .git (and git refuses a
# repository another user owns), so their trees are extracted here, as the
# invoking user, into tmp_release/VERSION (kept between runs while the commit
# is the same, so their builds are too).
extract_releases() {
	local version commit dir
	if ! git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		echo "the upgrade test builds the released versions from git, but $ROOT has no usable .git: run from a clone with full history" >&2
		return 1
	fi
	while read -r version commit; do
		case "$version" in '' | '#'*) continue ;; esac
		dir="$WORK/tmp_release/$version"
		[ "$(cat "$dir/.release-commit" 2>/dev/null || true)" = "$commit" ] && continue
		if ! git -C "$ROOT" cat-file -e "$commit^{commit}" 2>/dev/null; then
			echo "release $version: commit $commit is not in the history of $ROOT (a shallow clone?)" >&2
			return 1
		fi
		rm -rf "$dir"
		mkdir -p "$dir"
		git -C "$ROOT" archive "$commit" | tar -x -C "$dir" || return 1
		echo "$commit" >"$dir/.release-commit"
	done <"$ROOT/test/releases"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$RUN_AS" "$WORK/tmp_release"
	fi
}
# TAP tests: one make call each (prove_installcheck empties tmp_check/ at
# its start), so that each counts once and a failure shows its own logs.
for t in "${taps[@]}"; do
	[ -e "$t" ] || continue
	echo "== $t"
	case "$t" in
	*_upgrade.pl)
		if ! extract_releases; then
			failed=$((failed + 1))
			status=1
			continue
		fi
		;;
	esac
	if run_as make -s PG_CONFIG="$PG_CONFIG" REGRESS= ISOLATION= PROVE_TESTS="$t" installcheck; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		status=1
		for f in tmp_check/log/*; do
			[ -f "$f" ] || continue
			echo "== $f (tail)"
			tail -60 "$f"
		done
	fi
done

echo "$passed passed, $failed failed"
exit $status
