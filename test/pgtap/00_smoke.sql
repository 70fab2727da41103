-- pgTAP smoke test: the extension installs and its public API has the
-- contracted shape (SPEC section 3).
--
-- Convention for test/pgtap/*.sql: test/run.sh runs each file with pg_prove
-- in a FRESH, empty database (ds_tap_<file name>), so files cannot see each
-- other's objects.  Each file creates the extensions it needs itself, and
-- normally wraps everything in BEGIN ... ROLLBACK.  A file that must commit
-- (e.g. to observe NOTIFY or the background worker) may skip the transaction:
-- its database is thrown away with the cluster.
--
-- Run alone against a running test cluster (KEEP=1 bash test/run.sh, then
-- `source /tmp/ds-cluster.*/env.sh`):
--     createdb ds_tap_x && pg_prove -v -d ds_tap_x test/pgtap/00_smoke.sql

SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS durable_state;

SELECT plan(47);

SELECT has_extension('durable_state', 'extension durable_state is installed');
SELECT has_schema('state', 'schema state exists');
SELECT is((SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'durable_state'),
          'state', 'durable_state lives in schema state');

-- Signatures as installed (argument types, including optional arguments).
SELECT has_function('state', 'apply',             ARRAY['jsonb', 'text', 'text']);
SELECT has_function('state', 'apply_text',        ARRAY['text', 'text', 'text']);
SELECT has_function('state', 'get',               ARRAY['text', 'text', 'text']);
SELECT has_function('state', 'get_many',          ARRAY['text', 'text[]', 'text']);
SELECT has_function('state', 'get_type',          ARRAY['text', 'text']);
SELECT has_function('state', 'create_collection',
                    ARRAY['text', 'text', 'text', 'jsonb', 'regclass', 'text', 'text', 'boolean', 'boolean', 'name', 'boolean', 'name', 'interval']);
SELECT has_function('state', 'drop_collection',   ARRAY['text', 'text', 'boolean']);
SELECT has_function('state', 'changes',           ARRAY['text', 'text', 'integer', 'integer']);
SELECT has_function('state', 'snapshot',          ARRAY['text']);
SELECT has_function('state', 'tail',              ARRAY['text']);
SELECT has_function('state', 'channel',           ARRAY['text']);
SELECT has_function('state', 'put',               ARRAY['text', 'text', 'jsonb', 'interval', 'text', 'bigint']);
SELECT has_function('state', 'remove',            ARRAY['text', 'text', 'text']);
SELECT has_function('state', 'increment',         ARRAY['text', 'text', 'text', 'numeric', 'text']);
SELECT has_function('state', 'get_versioned',     ARRAY['text', 'text', 'text']);

-- Return types.
SELECT function_returns('state', 'apply',      ARRAY['jsonb', 'text', 'text'], 'setof record');
SELECT function_returns('state', 'apply_text', ARRAY['text', 'text', 'text'], 'setof record');
SELECT function_returns('state', 'get',        ARRAY['text', 'text', 'text'], 'jsonb');
SELECT function_returns('state', 'get_many',   ARRAY['text', 'text[]', 'text'], 'jsonb');
SELECT function_returns('state', 'get_type',   ARRAY['text', 'text'], 'setof record');
SELECT function_returns('state', 'create_collection',
                        ARRAY['text', 'text', 'text', 'jsonb', 'regclass', 'text', 'text', 'boolean', 'boolean', 'name', 'boolean', 'name', 'interval'],
                        'regclass');
SELECT function_returns('state', 'drop_collection', ARRAY['text', 'text', 'boolean'], 'void');
SELECT function_returns('state', 'changes',    ARRAY['text', 'text', 'integer', 'integer'], 'setof record');
SELECT function_returns('state', 'snapshot',   ARRAY['text'], 'setof jsonb');
SELECT function_returns('state', 'tail',       ARRAY['text'], 'text');
SELECT function_returns('state', 'channel',    ARRAY['text'], 'text');
SELECT function_returns('state', 'put',        ARRAY['text', 'text', 'jsonb', 'interval', 'text', 'bigint'], 'text');
SELECT function_returns('state', 'remove',     ARRAY['text', 'text', 'text'], 'boolean');
SELECT function_returns('state', 'increment',  ARRAY['text', 'text', 'text', 'numeric', 'text'], 'numeric');
SELECT function_returns('state', 'get_versioned', ARRAY['text', 'text', 'text'], 'setof record');

-- The contract is names and order of the leading arguments (SPEC: "add
-- optional arguments freely"), so callers can use named notation.
SELECT ok(EXISTS (SELECT 1 FROM pg_proc p
                   WHERE p.pronamespace = 'state'::regnamespace
                     AND p.proname = c.fn
                     AND p.proargnames[1:cardinality(c.args)] = c.args),
          format('state.%s(%s ...) argument names', c.fn, array_to_string(c.args, ', ')))
  FROM (VALUES
        (1, 'apply',             ARRAY['events', 'stream', 'source_offset']),
        (2, 'apply_text',        ARRAY['events', 'stream', 'source_offset']),
        (3, 'get',               ARRAY['type', 'key', 'stream']),
        (4, 'get_many',          ARRAY['type', 'keys', 'stream']),
        (5, 'get_type',          ARRAY['type', 'stream']),
        (6, 'create_collection', ARRAY['name', 'type', 'primary_key', 'schema', 'table_name', 'stream', 'mode']),
        (7, 'drop_collection',   ARRAY['name', 'stream', 'drop_table']),
        (8, 'changes',           ARRAY['stream', 'since', 'max_events', 'wait_ms']),
        (9, 'snapshot',          ARRAY['stream']),
        (10, 'tail',             ARRAY['stream']),
        (11, 'channel',          ARRAY['stream'])
       ) AS c(n, fn, args)
 ORDER BY c.n;

SELECT has_view('state', 'collections', 'view state.collections exists');
SELECT has_view('state', 'streams',     'view state.streams exists');
SELECT has_view('state', 'stats',       'view state.stats exists');

SELECT * FROM finish();
ROLLBACK;
