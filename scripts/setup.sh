#!/bin/bash
# Installs what analytics needs on Debian 12, builds it and installs it into
# PostgreSQL 15.  Works as root or as a user with sudo; safe to run again.
# Sourced by demo.sh and test.sh; afterwards RUN_AS names the unprivileged
# user that runs clusters, and PGBIN the server's bin directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# PGBIN may name the bin directory of another copy of PostgreSQL 15 (a
# private install for a parallel run of the tests).
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
PG_CONFIG="$PGBIN/pg_config"
export PG_CONFIG PGBIN

if [ "$(id -u)" -eq 0 ]; then
	SUDO=()
	RUN_AS=postgres
else
	SUDO=(sudo)
	RUN_AS="$(id -un)"
fi
export RUN_AS

# install_packages PACKAGE...: the Debian packages not installed yet.
install_packages() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		echo "== installing ${missing[*]}"
		"${SUDO[@]}" apt-get update -qq
		"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
}
install_packages postgresql-15 postgresql-server-dev-15 \
	libjson-c-dev pkg-config make gcc rsync libipc-run-perl

# Citus, for the scale-out test (test/t/NNN_citus.pl, skipped without it),
# from the source kept beside the project when it is there.
CITUS_INSTALL="$ROOT/../shared/citus/install.sh"
if [ -f "$CITUS_INSTALL" ] && [ ! -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]; then
	echo "== installing Citus from $CITUS_INSTALL"
	PG_CONFIG="$PG_CONFIG" bash "$CITUS_INSTALL"
fi

echo "== building and installing analytics"
make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" >/dev/null
"${SUDO[@]}" make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" install >/dev/null

# run_as CMD...: run a command as the unprivileged cluster user.
run_as() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$RUN_AS" -- "$@"
	else
		"$@"
	fi
}

# work_copy DIR: a copy of the tree that RUN_AS owns and can write.
work_copy() {
	local dir="$1"
	mkdir -p "$dir"
	rsync -a --delete --exclude .git --exclude tmp_check --exclude tmp_check_iso \
		--exclude results --exclude output_iso --exclude tmp_release \
		--exclude /dashboard/dist --exclude /dashboard/src/.observablehq "$ROOT/" "$dir/"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$RUN_AS" "$dir"
	fi
}

# setup_dashboard [--browser]: what dashboard/ needs: Node.js and npm
# (Debian's, unless a node is installed already), its npm packages at the
# versions of package-lock.json (npm ci, again only when the lock file
# changed), and with --browser Debian's chromium for the browser test.
setup_dashboard() {
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		install_packages nodejs npm
	fi
	if [ "${1:-}" = "--browser" ]; then
		install_packages chromium
	fi
	local dir="$ROOT/dashboard" stamp
	stamp="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
	if [ "$(cat "$dir/node_modules/.lock-sha256" 2>/dev/null || true)" != "$stamp" ]; then
		echo "== npm ci in dashboard/"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
		echo "$stamp" >"$dir/node_modules/.lock-sha256"
	fi
}
