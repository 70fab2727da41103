-- privileges: state.apply and the reads run with the caller's rights on the
-- collection tables; tables with row-level security are refused until the
-- engine can apply policies (rather than bypassing them)
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE ROLE regress_ds_writer;
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

-- row-level security is refused, not bypassed
GRANT SELECT, INSERT, UPDATE, DELETE ON priv_items TO regress_ds_writer;
ALTER TABLE priv_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY priv_items_all ON priv_items USING (true) WITH CHECK (true);
SET ROLE regress_ds_writer;
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('pitem', 'c', 'insert', '{"n": 3}'), 'priv')$$);
SELECT t.expect_error($$SELECT state.get('pitem', 'a', 'priv')$$);
RESET ROLE;
-- the table owner is not subject to its policies (no FORCE), so it still works
SELECT applied, last_offset FROM state.apply(t.ev('pitem', 'c', 'insert', '{"n": 3}'), 'priv');
SELECT * FROM state.get_type('pitem', 'priv');

-- nothing the refused batches tried reached the log
SELECT "offset", event->>'key' AS key, event->'headers'->>'operation' AS op
  FROM state.changes('priv');

SELECT state.drop_collection('priv_items', 'priv', drop_table => true);
DROP OWNED BY regress_ds_writer;
DROP ROLE regress_ds_writer;
