-- review_fixes: reproductions of bugs found in review, kept as regressions
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never
SET timezone = 'UTC';

-- 1. one table, two collections of different kinds (once crashed the backend)
SELECT state.create_collection('rf_docs', 'rf_doc', stream => 'rf');
SELECT state.create_collection('rf_docs_adopted', 'rf_d2', primary_key => 'key',
                               table_name => 'rf_docs', stream => 'rf2');
SELECT applied FROM state.apply(t.ev('rf_d2', 'k1', 'insert', '{"value": {"a": 1}}'), 'rf2');
SELECT applied FROM state.apply(t.ev('rf_doc', 'k2', 'insert', '{"a": 2}'), 'rf');
SELECT state.get('rf_doc', 'k1', 'rf'), state.get('rf_d2', 'k2', 'rf2');
SELECT state.drop_collection('rf_docs_adopted', 'rf2');
SELECT state.drop_collection('rf_docs', 'rf', drop_table => true);

-- 3. several batches in one statement, each with its source offset
SELECT state.create_collection('rf_inbox_docs', 'rf_in', stream => 'rf_in');
CREATE TABLE rf_inbox (off text, events jsonb);
INSERT INTO rf_inbox VALUES
    ('001', jsonb_build_array(t.ev('rf_in', 'a', 'insert', '1'))),
    ('002', jsonb_build_array(t.ev('rf_in', 'b', 'insert', '2'), t.ev('rf_in', 'a', 'update', '3'))),
    ('002', jsonb_build_array(t.ev('rf_in', 'c', 'insert', '4'))),
    ('003', jsonb_build_array('{"headers": {"control": "snapshot-start"}}'::jsonb));
SELECT i.off, a.applied, a.skipped, a.last_offset
  FROM rf_inbox i, LATERAL state.apply(i.events, 'rf_in', i.off) a ORDER BY i.off, a.last_offset;
SELECT source_offset, in_snapshot, tail FROM state.streams WHERE stream = 'rf_in';
SELECT * FROM state.get_type('rf_in', 'rf_in');
DROP TABLE rf_inbox;
SELECT state.drop_collection('rf_inbox_docs', 'rf_in', drop_table => true);

-- 5. statement-level and UPDATE OF triggers fire; transition tables are refused
CREATE TABLE rf_trig (id text PRIMARY KEY, a int, b int);
CREATE TABLE rf_trig_log (what text);
CREATE FUNCTION rf_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rf_trig_log VALUES (TG_NAME || ' ' || TG_WHEN || ' ' || TG_LEVEL || ' ' || TG_OP);
    RETURN NULL;
END $$;
CREATE TRIGGER s1_bi BEFORE INSERT ON rf_trig FOR EACH STATEMENT EXECUTE FUNCTION rf_note();
CREATE TRIGGER s2_ai AFTER INSERT ON rf_trig FOR EACH STATEMENT EXECUTE FUNCTION rf_note();
CREATE TRIGGER s3_bu BEFORE UPDATE ON rf_trig FOR EACH STATEMENT EXECUTE FUNCTION rf_note();
CREATE TRIGGER r1_au_a AFTER UPDATE OF a ON rf_trig FOR EACH ROW EXECUTE FUNCTION rf_note();
SELECT state.create_collection('rf_trig', 'rf_t', table_name => 'rf_trig', stream => 'rf_t');
SELECT applied FROM state.apply(t.ev('rf_t', 'x', 'insert', '{"a": 1, "b": 1}'), 'rf_t');
SELECT what FROM rf_trig_log ORDER BY what;
TRUNCATE rf_trig_log;
SELECT applied FROM state.apply(t.ev('rf_t', 'x', 'update', '{"a": 2, "b": 1}'), 'rf_t');
SELECT what FROM rf_trig_log ORDER BY what;
CREATE FUNCTION rf_newtable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER t_new AFTER INSERT ON rf_trig REFERENCING NEW TABLE AS n
    FOR EACH STATEMENT EXECUTE FUNCTION rf_newtable();
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('rf_t', 'y', 'insert', '{"a": 1}'), 'rf_t')$$);
SELECT state.drop_collection('rf_trig', 'rf_t', drop_table => true);
DROP TABLE rf_trig_log;
DROP FUNCTION rf_note();
DROP FUNCTION rf_newtable();

-- 6. a writer without privileges on the extension's tables can still use
--    source offsets and snapshot control events
CREATE ROLE regress_rf_writer IN ROLE state_writer;
GRANT USAGE ON SCHEMA state, t TO regress_rf_writer;
CREATE TABLE rf_w (id text PRIMARY KEY, n int);
SELECT state.create_collection('rf_w', 'rf_w', table_name => 'rf_w', stream => 'rf_w');
GRANT SELECT, INSERT, UPDATE, DELETE ON rf_w TO regress_rf_writer;
SET ROLE regress_rf_writer;
SELECT applied, skipped FROM state.apply(t.ev('rf_w', 'a', 'insert', '{"n": 1}'), 'rf_w', 'src-1');
SELECT applied, skipped FROM state.apply(t.ev('rf_w', 'b', 'insert', '{"n": 2}'), 'rf_w', 'src-1');
SELECT applied FROM state.apply('[{"headers": {"control": "snapshot-start"}}, {"headers": {"control": "snapshot-end"}}]', 'rf_w');
RESET ROLE;
SELECT source_offset, tail FROM state.streams WHERE stream = 'rf_w';
SELECT state.drop_collection('rf_w', 'rf_w', drop_table => true);
DROP OWNED BY regress_rf_writer;
DROP ROLE regress_rf_writer;

-- 7. compare-and-set on a typed collection compares as the column's type
SELECT state.create_collection('rf_tasks', 'rf_task', stream => 'rf_cas', check_old_value => true,
    schema => '{"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string"},
                "due": {"type": "string", "format": "date-time"}, "n": {"type": "number"}}}');
SELECT applied FROM state.apply(t.ev('rf_task', 't1', 'insert', '{"title": "x", "due": "2025-01-31T12:00:00.000Z", "n": 1.0}'), 'rf_cas');
SELECT applied FROM state.apply(t.ev('rf_task', 't1', 'update', '{"title": "y"}',
    '{"due": "2025-01-31T12:00:00.000Z", "n": 1.00, "title": "x"}'), 'rf_cas');
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('rf_task', 't1', 'update', '{"title": "z"}', '{"title": "x"}'), 'rf_cas')$$);
SELECT state.get('rf_task', 't1', 'rf_cas');
SELECT state.drop_collection('rf_tasks', 'rf_cas', drop_table => true);

-- 9. domains convert as their base type, then check the domain
CREATE DOMAIN rf_posint AS int CHECK (VALUE > 0) NOT NULL;
CREATE TABLE rf_dom (id text PRIMARY KEY, d rf_posint);
SELECT state.create_collection('rf_dom', 'rf_dom', table_name => 'rf_dom', stream => 'rf_dom');
SELECT applied FROM state.apply(t.ev('rf_dom', 'a', 'insert', '{"d": 1.0}'), 'rf_dom');
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('rf_dom', 'b', 'insert', '{"d": -1}'), 'rf_dom')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('rf_dom', 'c', 'insert', '{"d": null}'), 'rf_dom')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('rf_dom', 'e', 'insert', '{"d": "1"}'), 'rf_dom')$$);
SELECT * FROM rf_dom;
SELECT state.drop_collection('rf_dom', 'rf_dom', drop_table => true);
DROP DOMAIN rf_posint;

-- 8. DROP and CREATE EXTENSION in one transaction start the offsets afresh
BEGIN;
SELECT state.create_collection('rf_x', 'rf_x', stream => 'rf_x');
SELECT last_offset FROM state.apply(jsonb_build_array(t.ev('rf_x', 'a', 'insert', '1'),
                                                      t.ev('rf_x', 'b', 'insert', '2')), 'rf_x');
DROP TABLE rf_x;
DROP EXTENSION durable_state;
CREATE EXTENSION durable_state;
SELECT state.create_collection('rf_x', 'rf_x', stream => 'rf_x');
SELECT last_offset FROM state.apply(t.ev('rf_x', 'c', 'insert', '3'), 'rf_x');
ROLLBACK;

-- 9. old_value may name a generated column: it is compared with the stored
-- value (only the new value may not set one)
CREATE TABLE rf_gen (id text PRIMARY KEY, n bigint NOT NULL,
                     twice bigint GENERATED ALWAYS AS (n * 2) STORED);
SELECT state.create_collection('rf_gen', 'rf_gen', table_name => 'rf_gen', stream => 'rf_gen',
                               check_old_value => true);
SELECT applied FROM state.apply(t.ev('rf_gen', 'a', 'insert', '{"n": 1}'), 'rf_gen');
SELECT applied FROM state.apply(t.ev('rf_gen', 'a', 'update', '{"n": 2}', '{"n": 1, "twice": 2}'), 'rf_gen');
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('rf_gen', 'a', 'update', '{"n": 3}', '{"n": 2, "twice": 5}'), 'rf_gen')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('rf_gen', 'a', 'update', '{"n": 3, "twice": 6}'), 'rf_gen')$$);
SELECT * FROM rf_gen;
SELECT state.drop_collection('rf_gen', 'rf_gen', drop_table => true);
