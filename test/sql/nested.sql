-- nested: state.apply called from a trigger of a collection's table, and
-- many batches (with savepoints) in one transaction
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TABLE nest_orders (id text PRIMARY KEY, total numeric NOT NULL);
SELECT state.create_collection('nest_orders', 'order', table_name => 'nest_orders', stream => 'nest_main');
SELECT state.create_collection('nest_audit', 'audit', stream => 'nest_audit');

-- an AFTER trigger that records every order as an event of another stream
CREATE FUNCTION nest_audit_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM * FROM state.apply(jsonb_build_object(
        'type', 'audit', 'key', NEW.id, 'value', to_jsonb(NEW),
        'headers', jsonb_build_object('operation', 'upsert')), 'nest_audit');
    RETURN NULL;
END
$$;
CREATE TRIGGER nest_audit AFTER INSERT OR UPDATE ON nest_orders
    FOR EACH ROW EXECUTE FUNCTION nest_audit_trigger();

SELECT applied, skipped, last_offset FROM state.apply(jsonb_build_array(
    t.ev('order', 'o1', 'insert', '{"total": 10}'),
    t.ev('order', 'o2', 'insert', '{"total": 20}')), 'nest_main');
SELECT * FROM state.get_type('audit', 'nest_audit');
SELECT "offset", event->>'key' AS key FROM state.changes('nest_audit');

-- the same stream from inside its own batch is refused, and nothing is kept
CREATE OR REPLACE FUNCTION nest_audit_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM * FROM state.apply(jsonb_build_object(
        'type', 'order', 'key', NEW.id || '-copy', 'value', jsonb_build_object('total', NEW.total),
        'headers', jsonb_build_object('operation', 'upsert')), 'nest_main');
    RETURN NULL;
END
$$;
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('order', 'o3', 'insert', '{"total": 30}'), 'nest_main')$$);
SELECT id, total FROM nest_orders ORDER BY id;
SELECT state.tail('nest_main');
DROP TRIGGER nest_audit ON nest_orders;

-- many batches in one transaction, one rolled back to a savepoint: the
-- offsets stay dense and the rolled-back batch leaves nothing
BEGIN;
SELECT last_offset FROM state.apply(t.ev('order', 'o4', 'insert', '{"total": 40}'), 'nest_main');
SAVEPOINT s1;
SELECT last_offset FROM state.apply(t.ev('order', 'o5', 'insert', '{"total": 50}'), 'nest_main');
ROLLBACK TO SAVEPOINT s1;
SELECT last_offset FROM state.apply(t.ev('order', 'o6', 'insert', '{"total": 60}'), 'nest_main');
SAVEPOINT s2;
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('order', 'o4', 'insert', '{"total": 1}'), 'nest_main')$$);
RELEASE SAVEPOINT s2;
SELECT last_offset FROM state.apply(t.ev('order', 'o7', 'insert', '{"total": 70}'), 'nest_main');
COMMIT;
SELECT "offset", event->>'key' AS key FROM state.changes('nest_main');
SELECT id, total FROM nest_orders ORDER BY id;

-- a read-only transaction cannot apply
BEGIN READ ONLY;
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('order', 'o8', 'insert', '{"total": 80}'), 'nest_main')$$);
SELECT state.get('order', 'o7', 'nest_main');
COMMIT;

SELECT state.drop_collection('nest_orders', 'nest_main', drop_table => true);
SELECT state.drop_collection('nest_audit', 'nest_audit', drop_table => true);
DROP FUNCTION nest_audit_trigger();
