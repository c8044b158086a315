#!/bin/bash
# Writes the lists of rollup columns from their one definition,
# sql/rollup_columns.tsv, into the files that spell them out: the install
# pieces under sql/install/, the upgrade scripts not yet released and
# src/rollup.c.  A list is the region between a marker line and its end line:
#
#   SQL:  -- rollup columns: FORM SET ARGS...      ...  -- end rollup columns
#   C:    /* rollup columns: FORM SET ARGS... */   ...  /* end rollup columns */
#
# SET is "all" (usage_daily, usage_customer) or "per_day" (the columns with
# per_day = yes: usage_customer_day, usage_day), optionally followed by
# @VERSION: only the columns added in that version (a table with columns
# after the list, the upgrade script's new columns).  FORM, one line per
# column:
#
#   table                    name type NOT NULL [DEFAULT 0]   (a CREATE TABLE)
#   returns                  name type                        (RETURNS TABLE)
#   comments REL             COMMENT ON COLUMN analytics.REL.name IS '...';
#   add_column REL           ALTER TABLE analytics.REL ADD COLUMN name type
#                            NOT NULL DEFAULT 0; (an upgrade script; sums only)
#   list ALIAS               ALIAS.name  (ALIAS "-": the bare name)
#   log                      the aggregate over the logs (alias l) AS name
#   merge ALIAS              sum/min/max(ALIAS.name) AS name, sums of bigint
#                            cast back to bigint
#   add TARGET SOURCE        name = TARGET.name + SOURCE.name (LEAST or
#                            GREATEST for min and max): an upsert's SET list
#   subtract TARGET SOURCE   name = TARGET.name - SOURCE.name (sums only)
#
# A trailing "last" leaves the comma off the last line.  SQL lines take the
# marker's indentation; C lines are string literals (a marker ending in a
# backslash, inside a #define, ends them with one too).  Released scripts
# (sql/released.sha256) are never touched: they keep the lists they shipped.
#
#   scripts/rollup_columns.sh           rewrite the stale files
#   scripts/rollup_columns.sh --check   list them and fail (the build runs it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEF=sql/rollup_columns.tsv

# expand FILE: the file with every region written anew, on stdout.
expand() {
	awk -F'\t' -v file="$1" '
	function fail(msg) { printf "%s:%d: %s\n", file, FNR, msg > "/dev/stderr"; bad = 1; exit 1 }
	function qualified(t) {
		return t == "bigint" ? "pg_catalog.int8" : t == "double precision" ? "pg_catalog.float8" : "pg_catalog." t
	}
	function line(c, form, a1, a2,    m) {
		m = merge[c]
		if (form == "table")
			return name[c] " " type[c] " NOT NULL" (m == "sum" ? " DEFAULT 0" : "")
		if (form == "returns")
			return name[c] " " type[c]
		if (form == "comments") {
			t = comment[c]; gsub(/\x27/, "\x27\x27", t)
			return "COMMENT ON COLUMN analytics." a1 "." name[c] " IS \x27" t "\x27;"
		}
		if (form == "add_column") {
			if (m != "sum")
				fail("add_column: " name[c] " is not a sum")
			return "ALTER TABLE analytics." a1 " ADD COLUMN " name[c] " " type[c] " NOT NULL DEFAULT 0;"
		}
		if (form == "list")
			return (a1 == "-" ? "" : a1 ".") name[c]
		if (form == "log")
			return lexpr[c] " AS " name[c]
		if (form == "merge")
			return "pg_catalog." m "(" a1 "." name[c] ")" \
				(m == "sum" && type[c] == "bigint" ? "::" qualified(type[c]) : "") " AS " name[c]
		if (form == "add") {
			if (m == "sum")
				return name[c] " = " a1 "." name[c] " OPERATOR(pg_catalog.+) " a2 "." name[c]
			return name[c] " = " (m == "min" ? "LEAST" : "GREATEST") "(" a1 "." name[c] ", " a2 "." name[c] ")"
		}
		if (form == "subtract") {
			if (m != "sum")
				fail("subtract: " name[c] " is not a sum")
			return name[c] " = " a1 "." name[c] " OPERATOR(pg_catalog.-) " a2 "." name[c]
		}
		fail("unknown form " form)
	}
	FNR == NR {
		if ($0 ~ /^#/ || $0 == "")
			next
		if (NF != 7 || ($4 != "sum" && $4 != "min" && $4 != "max") || ($5 != "yes" && $5 != "no") ||
			$6 !~ /^[0-9]+\.[0-9]+$/)
			fail("bad definition line")
		n++; name[n] = $1; type[n] = $2; lexpr[n] = $3; merge[n] = $4; perday[n] = $5; since[n] = $6
		comment[n] = $7
		next
	}
	skipping {
		if ($0 ~ /^[ \t]*(--|\/\*) end rollup columns/) {
			skipping = 0
			print
		}
		next
	}
	{ print }
	$0 ~ /^[ \t]*(--|\/\*) rollup columns: / {
		c_mode = ($0 ~ /\/\*/)
		spec = $0
		indent = spec; sub(/[^ \t].*$/, "", indent)
		cont = (spec ~ /\\[ \t]*$/)
		sub(/^.*rollup columns: /, "", spec); sub(/[ \t]*\*\/[ \t]*(\\[ \t]*)?$/, "", spec)
		k = split(spec, w, " ")
		last = (w[k] == "last"); if (last) k--
		form = w[1]; set = w[2]; version = ""
		if (set ~ /@/) {
			version = set; sub(/^[^@]*@/, "", version); sub(/@.*$/, "", set)
		}
		if (set != "all" && set != "per_day")
			fail("unknown column set " set)
		cnt = 0
		for (c = 1; c <= n; c++)
			if ((set == "all" || perday[c] == "yes") && (version == "" || since[c] == version))
				pick[++cnt] = c
		for (i = 1; i <= cnt; i++) {
			text = line(pick[i], form, w[3], w[4])
			if (form != "comments" && form != "add_column" && !(last && i == cnt))
				text = text ","
			if (c_mode) {
				gsub(/\\/, "\\\\", text); gsub(/"/, "\\\"", text)
				print "\"    " text "\"" (cont ? " \\" : "")
			} else
				print indent text
		}
		skipping = 1
	}
	END {
		if (skipping && !bad)
			fail("a region is not closed by an end rollup columns line")
	}
	' "$DEF" "$1"
}

released=$(awk '{ print $2 }' sql/released.sha256)
stale=0
for f in $(grep -l -E '(--|/\*) rollup columns: ' sql/install/*.sql sql/*.sql src/*.c 2>/dev/null); do
	# A released script keeps the lists it shipped with (its checksum guards it).
	grep -qxF "$f" <<<"$released" && continue
	new=$(expand "$f")
	if [ "$new" != "$(cat "$f")" ]; then
		if [ "${1:-}" = --check ]; then
			echo "$f: the rollup columns differ from $DEF (run make rollup-columns)" >&2
			stale=1
		else
			printf '%s\n' "$new" >"$f"
			echo "wrote $f"
		fi
	fi
done
exit $stale
