-- privileges: state.apply and the reads run with the caller's rights on the
-- collection tables (row-level security through them: rls.sql)
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE ROLE regress_ds_writer IN ROLE state_writer;
GRANT USAGE ON SCHEMA state, t TO regress_ds_writer;
CREATE TABLE priv_items (id text PRIMARY KEY, n int);
SELECT state.create_collection('priv_items', 'pitem', table_name => 'priv_items', stream => 'priv');

-- no privileges on the table: nothing can be applied or read
SET ROLE regress_ds_writer;
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('pitem', 'a', 'insert', '{"n": 1}'), 'priv')$$);
SELECT t.expect_error($$SELECT state.get('pitem', 'a', 'priv')$$);
SELECT t.expect_error($$SELECT * FROM state.get_type('pitem', 'priv')$$);
RESET ROLE;

-- SELECT and INSERT: strict inserts work, updates and upserts need UPDATE,
-- deletes need DELETE
GRANT SELECT, INSERT ON priv_items TO regress_ds_writer;
SET ROLE regress_ds_writer;
SELECT applied, last_offset FROM state.apply(t.ev('pitem', 'a', 'insert', '{"n": 1}'), 'priv');
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('pitem', 'a', 'update', '{"n": 2}'), 'priv')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('pitem', 'b', 'upsert', '{"n": 2}'), 'priv')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('pitem', 'a', 'delete'), 'priv')$$);
SELECT state.get('pitem', 'a', 'priv');
RESET ROLE;
SELECT id, n FROM priv_items ORDER BY id;

-- reads need SELECT
REVOKE SELECT ON priv_items FROM regress_ds_writer;
SET ROLE regress_ds_writer;
SELECT t.expect_error($$SELECT state.get('pitem', 'a', 'priv')$$);
SELECT t.expect_error($$SELECT state.get_many('pitem', ARRAY['a'], 'priv')$$);
RESET ROLE;

-- row-level security applies (rls.sql has the details): a policy that allows
-- everything lets the writer through
GRANT SELECT, INSERT, UPDATE, DELETE ON priv_items TO regress_ds_writer;
ALTER TABLE priv_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY priv_items_all ON priv_items USING (true) WITH CHECK (true);
SET ROLE regress_ds_writer;
SELECT applied, last_offset FROM state.apply(t.ev('pitem', 'c', 'insert', '{"n": 3}'), 'priv');
SELECT state.get('pitem', 'a', 'priv');
RESET ROLE;
SELECT * FROM state.get_type('pitem', 'priv');

-- nothing the refused batches tried reached the log
SELECT "offset", event->>'key' AS key, event->'headers'->>'operation' AS op
  FROM state.changes('priv');

SELECT state.drop_collection('priv_items', 'priv', drop_table => true);

-- The roles.  state_reader: reads, the log, await; state_writer: also writes.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('state_reader', 'state_writer') ORDER BY 1;
SELECT pg_has_role('state_writer', 'state_reader', 'MEMBER') AS writer_reads;
CREATE ROLE regress_ds_reader IN ROLE state_reader;
CREATE ROLE regress_ds_nobody;
-- two tenants, each in its own stream; the reader may read tenant a's table only
CREATE TABLE priv_a (id text PRIMARY KEY, n int);
CREATE TABLE priv_b (id text PRIMARY KEY, n int);
SELECT state.create_collection('priv_a', 'item', table_name => 'priv_a', stream => 'tenant a');
SELECT state.create_collection('priv_b', 'item', table_name => 'priv_b', stream => 'tenant b');
SELECT applied FROM state.apply(t.ev('item', 'x', 'insert', '{"n": 1}'), 'tenant a');
SELECT applied FROM state.apply(t.ev('item', 'secret', 'insert', '{"n": 2}'), 'tenant b');
GRANT SELECT ON priv_a TO regress_ds_reader, regress_ds_nobody;
GRANT SELECT ON priv_b TO regress_ds_nobody;
GRANT USAGE ON SCHEMA t TO regress_ds_reader, regress_ds_nobody;
SET ROLE regress_ds_reader;
SELECT state.get('item', 'x', 'tenant a') AS a_value;
SELECT "offset", event->>'key' AS key FROM state.changes('tenant a');
SELECT s->'headers'->>'control' AS ctl, s->>'key' AS key FROM state.snapshot('tenant a') s;
SELECT state.tail('tenant a') AS a_tail;
-- tenant b's log: refused, and its rows are invisible in the log itself
SELECT t.expect_error_verbose($$SELECT * FROM state.changes('tenant b')$$);
SELECT t.expect_error($$SELECT * FROM state.snapshot('tenant b')$$);
SELECT t.expect_error($$SELECT state.tail('tenant b')$$);
SELECT t.expect_error($$SELECT state.get('item', 'secret', 'tenant b')$$);
SELECT stream, event->>'key' AS key FROM state.log_events WHERE stream LIKE 'tenant%' ORDER BY 1, 2;
SELECT count(*) AS log_segments_seen FROM state.log l JOIN state._streams s ON s.id = l.stream_id
 WHERE s.name LIKE 'tenant%';
-- a reader cannot write, lock a stream, set a TTL or publish
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('item', 'y', 'insert', '{"n": 3}'), 'tenant a')$$);
SELECT t.expect_error($$SELECT state.put('item', 'y', '{"n": 3}', stream => 'tenant a')$$);
SELECT t.expect_error($$SELECT state.increment('item', 'x', 'n', 1, 'tenant a')$$);
SELECT t.expect_error($$SELECT state.remove('item', 'x', 'tenant a')$$);
SELECT t.expect_error($$SELECT state.publish('t', '{}', 'tenant a')$$);
SELECT t.expect_error($$SELECT state._lock_stream('tenant a')$$);
-- but it may await txids
SELECT state.await_txid('nope', 0) AS awaited;
RESET ROLE;
-- a role without the roles has no way into schema state at all
SET ROLE regress_ds_nobody;
SELECT t.expect_error($$SELECT state.get('item', 'x', 'tenant a')$$);
SELECT t.expect_error($$SELECT * FROM state.changes('tenant a')$$);
RESET ROLE;
-- row-level security on a stream's table closes the raw log to roles it
-- applies to; changes and snapshots go through the table's policies instead
-- (here: none of its rows; rls.sql has the rest)
ALTER TABLE priv_a ENABLE ROW LEVEL SECURITY;
CREATE POLICY priv_a_none ON priv_a USING (false);
SET ROLE regress_ds_reader;
SELECT count(*) AS events_seen FROM state.changes('tenant a');
SELECT t.expect_error($$SELECT state.tail('tenant a')$$);
SELECT count(*) AS rls_log_rows FROM state.log_events WHERE stream = 'tenant a';
SELECT s->'headers'->>'control' AS ctl, s->>'key' AS key FROM state.snapshot('tenant a') s;
RESET ROLE;
SELECT count(*) AS owner_log_rows FROM state.log_events WHERE stream = 'tenant a';
SELECT state.drop_collection('priv_a', 'tenant a', drop_table => true);
SELECT state.drop_collection('priv_b', 'tenant b', drop_table => true);
DROP OWNED BY regress_ds_reader;
DROP OWNED BY regress_ds_nobody;
DROP ROLE regress_ds_reader;
DROP ROLE regress_ds_nobody;
DROP OWNED BY regress_ds_writer;
DROP ROLE regress_ds_writer;
