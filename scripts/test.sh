#!/bin/bash
# The whole test suite: set up (packages, build, install), then, as an
# unprivileged user on a writable copy of the tree, `make installcheck`
# (pg_regress and isolation specs against temporary instances that preload
# the library) and the shell tests under test/ (crash, stress).  Prints the
# diffs of a failure and exits non-zero.
set -euo pipefail
# One suite at a time per machine: the library is installed system-wide.
exec 9>/tmp/analytics-install.lock
flock 9
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

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
for part in "ISOLATION=" "REGRESS="; do
	echo "== make installcheck $part"
	if run_as make -s PG_CONFIG="$PG_CONFIG" "$part" installcheck 2>&1 | tee -a installcheck.log; [ "${PIPESTATUS[0]}" -eq 0 ]; then
		:
	else
		status=1
	fi
done
for f in regression.diffs output_iso/regression.diffs; do
	[ -f "$f" ] && { echo "== $f"; cat "$f"; }
done
passed=$(grep -cE '\.\.\. ok' installcheck.log || true)
failed=$(grep -cE '\.\.\. FAILED' installcheck.log || true)

for t in test/*.sh; do
	[ -e "$t" ] || continue
	echo "== $t"
	if run_as env PGBIN="$PGBIN" bash "$t"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		status=1
	fi
done

echo "$passed passed, $failed failed"
exit $status
