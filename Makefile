EXTENSION = durable_state
EXTVERSION = 0.9.0

MODULE_big = durable_state
OBJS = src/init.o src/event.o src/catalog.o src/apply.o src/probe.o src/row.o src/changelog.o src/stable.o src/changes.o src/inflight.o src/convert.o \
	src/reads.o src/kv.o src/rls.o src/shared.o src/notify.o src/txid.o src/horizon.o src/ttl.o src/launcher.o src/worker.o src/waitread.o src/standbys.o src/util.o src/apply_text.o src/jsontext.o src/ingest.o \
	src/jsonschema/cache.o src/jsonschema/compile.o src/jsonschema/content.o src/jsonschema/format.o src/jsonschema/format_net.o \
	src/jsonschema/format_uri.o src/jsonschema/inplace.o src/jsonschema/regex.o src/jsonschema/regex_simple.o \
	src/jsonschema/uri.o src/jsonschema/validate.o src/jsonschema/value.o src/schema_sql.o

DATA = $(wildcard sql/$(EXTENSION)--*.sql)

PG_CFLAGS += -Wall -Werror -Wmissing-prototypes
# the files in src/jsonschema/ include the headers in src/
PG_CPPFLAGS += -Isrc
# PCRE2 (ECMA-262 patterns, regex.c) and libidn2 (IDNA2008 host names, format.c)
SHLIB_LINK += -lpcre2-8 -lidn2

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
$(OBJS): src/durable_state.h src/jsonschema.h src/util.h src/apply.h src/jsontext.h src/shmem.h src/standbys.h \
	src/jsonschema/jsonschema_int.h

.PHONY: test stress valgrind sanitize bench bench-apply bench-notify bench-kv bench-increment bench-rls bench-scale bench-changes demo meta
test:
	bash test/run.sh
# the whole suite with the long crash loop (100 kills of larger batches) and
# 5 minutes of 8 writers on one stream (test/t/stress_one_stream.js); the
# crash loop alone takes about 10 minutes on 2 cores, over the default
# 600 s per test
stress:
	DS_CRASH_KILLS=100 DS_CRASH_BATCH=200 DS_STRESS_SECONDS=300 DS_TEST_TIMEOUT=1500 bash test/run.sh
# the suites against a server under valgrind (test/valgrind.sh)
valgrind:
	bash test/valgrind.sh
# the whole suite against PostgreSQL and the extension built with ASan and
# UBSan (test/sanitize.sh; builds PostgreSQL from source the first time)
sanitize:
	bash test/sanitize.sh
# every benchmark: apply and schema checks (bench/run.sh), then notifications
# and txid confirmation (bench/notify.sh), key/value round trips against
# Redis (bench/kv.sh), counters on one stream (bench/increment.sh),
# row-level security (bench/rls.sh), reading and pruning the log
# (bench/changes.sh)
bench: bench-apply bench-notify bench-kv bench-increment bench-rls bench-changes
bench-apply:
	bash bench/run.sh
bench-notify:
	bash bench/notify.sh
bench-kv:
	bash bench/kv.sh
bench-increment:
	bash bench/increment.sh
bench-rls:
	bash bench/rls.sh
# the JSON Schema validator beside ajv, same schema, same values, same run
# (bench/schema_ajv.sh; not part of `make bench`)
bench-schema-ajv:
	bash bench/schema_ajv.sh
# the Durable Streams sink from the reference server into Postgres
# (bench/sink.sh; not part of `make bench`)
bench-sink:
	bash bench/sink.sh
# costs as the data grows, each beside plain SQL (bench/scale.sh; not part
# of `make bench`: 1M entities take about 5 minutes, SIZE=5M longer)
SIZE ?= 1000000
bench-scale:
	bash bench/scale.sh $(SIZE)
bench-changes:
	bash bench/changes.sh
demo:
	bash test/demo.sh
# rebuild the embedded meta-schemas (src/jsonschema_meta.h) from the JSON
# files in src/jsonschema/meta/ (needs node)
meta:
	node src/jsonschema/meta/gen_meta.js > src/jsonschema_meta.h.tmp
	mv src/jsonschema_meta.h.tmp src/jsonschema_meta.h
