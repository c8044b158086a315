# Makefile for the analytics extension (PGXS)

EXTENSION = analytics
MODULE_big = analytics

# Every src/*.c is part of the library.
SRCS = $(sort $(wildcard src/*.c))
OBJS = $(SRCS:.c=.o)

# The install script of each version is assembled from the pieces under
# sql/install/ (one piece per concern, applied in name order).  Upgrade
# scripts (analytics--X--Y.sql) are written by hand and never generated.
INSTALL_PIECES = $(sort $(wildcard sql/install/*.sql))
DATA_built = sql/analytics--1.0.sql
DATA = $(filter-out $(DATA_built),$(wildcard sql/analytics--*--*.sql))

PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags json-c 2>/dev/null)
SHLIB_LINK = $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)

# Regression tests: every sql/*.sql except install scripts.  Each test
# creates the extension afresh, so the order does not matter.
TESTS = $(sort $(basename $(notdir $(filter-out sql/analytics--%,$(wildcard sql/*.sql)))))
REGRESS = $(TESTS)
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=$(srcdir)/test/analytics.conf \
	--load-extension=plpgsql
ISOLATION = $(sort $(basename $(notdir $(wildcard specs/*.spec))))
ISOLATION_OPTS = --temp-instance=tmp_check_iso --temp-config=$(srcdir)/test/analytics.conf

EXTRA_CLEAN = sql/analytics--1.0.sql tmp_check tmp_check_iso results output_iso \
	regression.diffs regression.out

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/analytics--1.0.sql: $(INSTALL_PIECES)
	cat $^ > $@
