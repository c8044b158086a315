# Makefile for the analytics extension (PGXS)

EXTENSION = analytics
MODULE_big = analytics

# The version lives in one place, the control file's default_version.
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(srcdir)/analytics.control)

# Every src/*.c is part of the library.
SRCS = $(sort $(wildcard src/*.c))
OBJS = $(SRCS:.c=.o)
# PGXS knows no header dependencies: rebuild every object when a header
# changes (a stale object would read a changed struct wrongly).
$(OBJS): $(wildcard src/*.h)

# The install script of the current version is assembled from the pieces
# under sql/install/ (one piece per concern, applied in name order).  Released
# install scripts (sql/analytics--1.0.sql) are committed as they shipped and
# never edited: sql/released.sha256 holds their checksums and the build stops
# when one differs.  Upgrade scripts (analytics--X--Y.sql) are written by hand.
INSTALL_PIECES = $(sort $(wildcard sql/install/*.sql))
DATA_built = sql/analytics--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(wildcard sql/analytics--*.sql))

PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags json-c 2>/dev/null) \
	-DANALYTICS_VERSION='"$(EXTVERSION)"'
SHLIB_LINK = $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)

# Tests live under test/, install sources under sql/.  Regression tests:
# test/sql/*.sql against test/expected/; isolation specs: test/specs/*.spec.
# Each test creates the extension afresh, so the order does not matter.
REGRESS = $(sort $(basename $(notdir $(wildcard test/sql/*.sql))))
REGRESS_OPTS = --inputdir=$(srcdir)/test --temp-instance=tmp_check \
	--temp-config=$(srcdir)/test/analytics.conf --load-extension=plpgsql
ISOLATION = $(sort $(basename $(notdir $(wildcard test/specs/*.spec))))
ISOLATION_OPTS = --inputdir=$(srcdir)/test --temp-instance=tmp_check_iso \
	--temp-config=$(srcdir)/test/analytics.conf
# Process-level tests (worker lifecycle and crash, stress, stalls, fuzzing):
# TAP scripts test/t/NNN_name.pl on clusters of their own, sharing
# test/perl/AnalyticsTest.pm (PROVE_FLAGS is set after the include of PGXS,
# which empties it).
TAP_TESTS = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

EXTRA_CLEAN = $(DATA_built) tmp_check tmp_check_iso results output_iso \
	regression.diffs regression.out

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

PROVE_FLAGS = -I $(srcdir)/test/perl

all: check-released check-rollup-columns

$(DATA_built): $(INSTALL_PIECES)
	cat $^ > $@

# The lists of rollup columns in the SQL pieces, the upgrade script and
# src/rollup.c are written from sql/rollup_columns.tsv: `make rollup-columns`
# writes them after an edit of the definition, and every build checks that
# they agree with it (before compiling).
.PHONY: rollup-columns check-rollup-columns
rollup-columns:
	@cd $(srcdir) && bash scripts/rollup_columns.sh
check-rollup-columns:
	@cd $(srcdir) && bash scripts/rollup_columns.sh --check
$(OBJS) $(DATA_built): | check-rollup-columns

.PHONY: check-released
check-released:
	@cd $(srcdir) && sha256sum --quiet -c sql/released.sha256 || \
		{ echo "a released install script changed: never edit one, write an upgrade script" >&2; exit 1; }
