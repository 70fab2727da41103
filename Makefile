EXTENSION = durable_state
EXTVERSION = 0.4.0

MODULE_big = durable_state
OBJS = src/init.o src/event.o src/catalog.o src/apply.o src/changelog.o src/convert.o src/reads.o src/rls.o \
	src/jsonschema.o src/schema_sql.o src/shared.o src/notify.o src/txid.o src/ttl.o src/worker.o src/standbys.o

DATA = $(wildcard sql/$(EXTENSION)--*.sql)

PG_CFLAGS += -Wall -Werror -Wmissing-prototypes

# pg_regress tests: test/sql/*.sql with expected output in expected/
# (test/expected is a symlink to ../expected so pg_regress finds it).
REGRESS = $(sort $(patsubst test/sql/%.sql,%,$(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --load-extension=$(EXTENSION)

# isolation specs: test/specs/*.spec, expected output in expected/
ISOLATION = $(sort $(patsubst test/specs/%.spec,%,$(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=$(EXTENSION)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every module includes the shared header: rebuild all when it changes
$(OBJS): src/durable_state.h src/jsonschema.h src/standbys.h

.PHONY: test stress valgrind sanitize bench bench-apply bench-notify bench-kv bench-rls demo
test:
	bash test/run.sh
# the whole suite with the long crash loop (100 kills of larger batches)
stress:
	DS_CRASH_KILLS=100 DS_CRASH_BATCH=200 bash test/run.sh
# the suites against a server under valgrind (test/valgrind.sh)
valgrind:
	bash test/valgrind.sh
# the whole suite against PostgreSQL and the extension built with ASan and
# UBSan (test/sanitize.sh; builds PostgreSQL from source the first time)
sanitize:
	bash test/sanitize.sh
# every benchmark: apply and schema checks (bench/run.sh), then notifications
# and txid confirmation (bench/notify.sh), key/value round trips against
# Redis (bench/kv.sh), row-level security (bench/rls.sh)
bench: bench-apply bench-notify bench-kv bench-rls
bench-apply:
	bash bench/run.sh
bench-notify:
	bash bench/notify.sh
bench-kv:
	bash bench/kv.sh
bench-rls:
	bash bench/rls.sh
demo:
	bash test/demo.sh
