#!/bin/bash
# Installs what analytics needs on Debian 12, builds it and installs it into
# PostgreSQL 15.  Works as root or as a user with sudo; safe to run again.
# Sourced by demo.sh and test.sh; afterwards RUN_AS names the unprivileged
# user that runs clusters, and PGBIN the server's bin directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGBIN=/usr/lib/postgresql/15/bin
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

PACKAGES=(postgresql-15 postgresql-server-dev-15
	libjson-c-dev pkg-config make gcc rsync libipc-run-perl)
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "== installing ${missing[*]}"
	"${SUDO[@]}" apt-get update -qq
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

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
		--exclude results --exclude output_iso --exclude tmp_release "$ROOT/" "$dir/"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$RUN_AS" "$dir"
	fi
}
