-- apply_semantics: what state.apply() does with valid events
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never
SET timezone = 'UTC';

-- Applies to stream 'sem'; returns "applied N" or "SQLSTATE: message" (with
-- the DETAIL of a schema violation, where the validator explains it).
CREATE FUNCTION pg_temp.sem(events jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    d text;
BEGIN
    SELECT applied INTO n FROM state.apply(events, 'sem');
    RETURN 'applied ' || n;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM
        || CASE WHEN SQLERRM LIKE '%violates the schema%' THEN E'\nDETAIL: ' || d ELSE '' END;
END
$$;

SELECT state.create_collection('sem_docs', stream => 'sem');
SELECT state.create_collection('sem_len', stream => 'sem', mode => 'lenient');

-- ---------------------------------------------------------------------------
-- strict mode (the default)
-- ---------------------------------------------------------------------------
SELECT pg_temp.sem(t.ev('sem_docs', 'a', 'insert', '{"v": 1}'));
SELECT pg_temp.sem(t.ev('sem_docs', 'a', 'insert', '{"v": 2}'));
SELECT pg_temp.sem(t.ev('sem_docs', 'zz', 'update', '{"v": 2}'));
SELECT pg_temp.sem(t.ev('sem_docs', 'zz', 'delete'));
SELECT pg_temp.sem(t.ev('sem_docs', 'zz', 'delete', 'null'));
SELECT * FROM state.get_type('sem_docs', 'sem');
SELECT pg_temp.sem(t.ev('sem_docs', 'a', 'update', '{"v": 3}'));
SELECT pg_temp.sem(t.ev('sem_docs', 'b', 'upsert', '{"v": 1}'));
SELECT pg_temp.sem(t.ev('sem_docs', 'b', 'upsert', '{"v": 2}'));
SELECT * FROM state.get_type('sem_docs', 'sem');
SELECT pg_temp.sem(t.ev('sem_docs', 'b', 'delete'));
SELECT * FROM state.get_type('sem_docs', 'sem');
-- the error names the failing event; the events before it are not applied
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_docs', 'c', 'insert', '1'),
                                     t.ev('sem_docs', 'd', 'insert', '1'),
                                     t.ev('sem_docs', 'c', 'insert', '2')));
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_docs', 'c', 'insert', '1'),
                                     t.ev('sem_docs', 'c', 'delete'),
                                     t.ev('sem_docs', 'c', 'update', '2')));
SELECT t.expect_error_verbose($$SELECT * FROM state.apply('{"type": "sem_docs", "key": "a", "value": 0, "headers": {"operation": "insert"}}', 'sem')$$);
SELECT t.expect_error_verbose($$SELECT * FROM state.apply('{"type": "sem_docs", "key": "zz", "headers": {"operation": "delete"}}', 'sem')$$);
SELECT * FROM state.get_type('sem_docs', 'sem');

-- ---------------------------------------------------------------------------
-- lenient mode: insert/update/upsert all store; delete of a missing key is a
-- no-op that is still logged
-- ---------------------------------------------------------------------------
SELECT pg_temp.sem(t.ev('sem_len', 'a', 'insert', '"first"'));
SELECT pg_temp.sem(t.ev('sem_len', 'a', 'insert', '"insert over existing"'));
SELECT pg_temp.sem(t.ev('sem_len', 'b', 'update', '"update of missing"'));
SELECT pg_temp.sem(t.ev('sem_len', 'c', 'upsert', '"upsert"'));
SELECT * FROM state.get_type('sem_len', 'sem');
SELECT state.tail('sem') AS before_delete \gset
SELECT pg_temp.sem(t.ev('sem_len', 'missing', 'delete'));
SELECT state.tail('sem') > :'before_delete' AS tail_advanced;
SELECT "offset" > :'before_delete' AS after, event FROM state.changes('sem', :'before_delete');
SELECT pg_temp.sem(t.ev('sem_len', 'a', 'delete'));
SELECT * FROM state.get_type('sem_len', 'sem');

-- ---------------------------------------------------------------------------
-- typed collections: the value is the whole row
-- ---------------------------------------------------------------------------
CREATE TABLE sem_adopt (
    id    text PRIMARY KEY,
    i     int,
    n     bigint,
    num   numeric,
    b     boolean,
    ts    timestamptz,
    u     uuid,
    j     jsonb,
    t     text,
    d     text DEFAULT 'the default',
    c     int NOT NULL DEFAULT 0
);
SELECT state.create_collection('sem_adopt', table_name => 'sem_adopt', stream => 'sem');
SELECT pg_temp.sem(t.ev('sem_adopt', 'r1', 'insert', $${
    "i": 2147483647, "n": 9007199254740993, "num": 1.50, "b": true,
    "ts": "2025-01-31T12:00:00.000Z", "u": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
    "j": {"x": [1, 2.50, "s", null, true]}, "t": "text ✓", "d": "given", "c": 5}$$));
SELECT * FROM sem_adopt;
SELECT state.get('sem_adopt', 'r1', 'sem');
-- more numbers and times
SELECT pg_temp.sem(t.ev('sem_adopt', 'r2', 'insert', $${
    "i": -2147483648, "n": -9223372036854775808, "num": 123456789012345678901234567890.000000000000000000001,
    "b": false, "ts": "2025-06-30T23:59:59.123456+02:00", "j": 1.0, "t": ""}$$));
SELECT pg_temp.sem(t.ev('sem_adopt', 'r3', 'insert', '{"num": 1e3, "n": 1E2, "j": "a string", "ts": "2024-02-29t00:00:00z"}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'r4', 'insert', '{"j": null, "i": null}'));
SELECT id, i, n, num, b, ts, j, t, d, c FROM sem_adopt WHERE id <> 'r1' ORDER BY id;
SELECT * FROM state.get_type('sem_adopt', 'sem') WHERE key <> 'r1';
-- update replaces the whole value: members left out become NULL, or take
-- the column default
SELECT pg_temp.sem(t.ev('sem_adopt', 'r1', 'update', '{"n": 5}'));
SELECT * FROM sem_adopt WHERE id = 'r1';
SELECT state.get('sem_adopt', 'r1', 'sem');
SELECT pg_temp.sem(t.ev('sem_adopt', 'r1', 'upsert', '{"t": "upserted", "c": 7}'));
SELECT state.get('sem_adopt', 'r1', 'sem');
-- the same on a document collection: no merge
SELECT pg_temp.sem(t.ev('sem_docs', 'm', 'insert', '{"a": 1, "b": 2}'));
SELECT pg_temp.sem(t.ev('sem_docs', 'm', 'update', '{"c": 3}'));
SELECT state.get('sem_docs', 'm', 'sem');

-- wrong JSON type for a column (nothing is stored)
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"n": "5"}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"i": true}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"i": [1]}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"b": 1}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"b": "true"}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"t": {"a": 1}}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"t": [1]}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"u": "not-a-uuid"}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"u": {"a": 1}}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"ts": "not a time"}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"n": 1.5}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"i": 2147483648}'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '{"n": 9223372036854775808}'));
-- a JSON number or boolean is not a string, and a string is not a number:
-- storing them would not round-trip (state.get would return another JSON type)
SELECT split_part(pg_temp.sem(t.ev('sem_adopt', 'w-tn', 'insert', '{"t": 5}')), ':', 1) AS text_from_number;
SELECT split_part(pg_temp.sem(t.ev('sem_adopt', 'w-tb', 'insert', '{"t": true}')), ':', 1) AS text_from_boolean;
SELECT split_part(pg_temp.sem(t.ev('sem_adopt', 'w-ns', 'insert', '{"num": "1.5"}')), ':', 1) AS numeric_from_string;
SELECT count(*) AS rows_w FROM sem_adopt WHERE id LIKE 'w%';

-- a value member with no column
SELECT t.expect_error_verbose($$SELECT * FROM state.apply('{"type": "sem_adopt", "key": "w", "value": {"nope": 1}, "headers": {"operation": "insert"}}', 'sem')$$);
-- ... is ignored with allow_extra => true
CREATE TABLE sem_extra (id text PRIMARY KEY, v text);
SELECT state.create_collection('sem_extra', table_name => 'sem_extra', stream => 'sem', allow_extra => true);
SELECT pg_temp.sem(t.ev('sem_extra', 'e1', 'insert', '{"v": "kept", "nope": 1, "other": {"x": 1}}'));
SELECT * FROM sem_extra;
SELECT state.get('sem_extra', 'e1', 'sem');
-- a typed value must be an object
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '"a string"'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '5'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', '[1]'));
SELECT pg_temp.sem(t.ev('sem_adopt', 'w', 'insert', 'null'));
-- generated and identity columns cannot be set
CREATE TABLE sem_gen (id text PRIMARY KEY, v text, len int GENERATED ALWAYS AS (length(v)) STORED,
                      seq int GENERATED ALWAYS AS IDENTITY);
SELECT state.create_collection('sem_gen', table_name => 'sem_gen', stream => 'sem');
SELECT pg_temp.sem(t.ev('sem_gen', 'g1', 'insert', '{"v": "abc"}'));
SELECT state.get('sem_gen', 'g1', 'sem');
SELECT pg_temp.sem(t.ev('sem_gen', 'g2', 'insert', '{"v": "abc", "len": 3}'));
SELECT pg_temp.sem(t.ev('sem_gen', 'g2', 'insert', '{"v": "abc", "seq": 9}'));

-- ---------------------------------------------------------------------------
-- the primary-key member
-- ---------------------------------------------------------------------------
SELECT state.create_collection('sem_typed', stream => 'sem', schema => $${
    "type": "object",
    "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["name"]}$$);
-- absent: filled in from the key
SELECT pg_temp.sem(t.ev('sem_typed', 'k1', 'insert', '{"name": "one"}'));
-- equal to the key: fine
SELECT pg_temp.sem(t.ev('sem_typed', 'k2', 'insert', '{"id": "k2", "name": "two"}'));
SELECT * FROM state.get_type('sem_typed', 'sem');
-- different from the key
SELECT t.expect_error_verbose($$SELECT * FROM state.apply('{"type": "sem_typed", "key": "k3", "value": {"id": "other", "name": "x"}, "headers": {"operation": "insert"}}', 'sem')$$);
SELECT pg_temp.sem(t.ev('sem_typed', 'k1', 'update', '{"id": "k2", "name": "x"}'));
SELECT pg_temp.sem(t.ev('sem_typed', 'k3', 'upsert', '{"id": null, "name": "x"}'));
SELECT pg_temp.sem(t.ev('sem_typed', 'k3', 'upsert', '{"id": 3, "name": "x"}'));
SELECT pg_temp.sem(t.ev('sem_typed', 'k3', 'upsert', '{"id": "K3", "name": "x"}'));
-- a number primary key: the member may be a number or a string
CREATE TABLE sem_intpk (id bigint PRIMARY KEY, v text);
SELECT state.create_collection('sem_intpk', table_name => 'sem_intpk', stream => 'sem');
SELECT pg_temp.sem(t.ev('sem_intpk', '7', 'insert', '{"id": 7, "v": "number"}'));
SELECT pg_temp.sem(t.ev('sem_intpk', '8', 'insert', '{"id": "8", "v": "string"}'));
SELECT pg_temp.sem(t.ev('sem_intpk', '9', 'insert', '{"v": "absent"}'));
SELECT pg_temp.sem(t.ev('sem_intpk', '10', 'insert', '{"id": 11, "v": "different"}'));
SELECT pg_temp.sem(t.ev('sem_intpk', 'ten', 'insert', '{"v": "not a number"}'));
SELECT * FROM state.get_type('sem_intpk', 'sem');
-- document collections store the value unchanged (nothing is filled in),
-- but a primary-key member that is present must still match
SELECT pg_temp.sem(t.ev('sem_docs', 'p1', 'insert', '{"name": "no id"}'));
SELECT pg_temp.sem(t.ev('sem_docs', 'p2', 'insert', '{"id": "p2", "name": "same id"}'));
SELECT pg_temp.sem(t.ev('sem_docs', 'p3', 'insert', '{"id": "other"}'));
SELECT pg_temp.sem(t.ev('sem_docs', 'p3', 'insert', '{"id": 3}'));
SELECT state.get_many('sem_docs', ARRAY['p1', 'p2', 'p3'], 'sem');
SELECT state.create_collection('sem_uid', stream => 'sem', primary_key => 'uid');
SELECT pg_temp.sem(t.ev('sem_uid', 'u1', 'insert', '{"id": "not the key member", "uid": "u1"}'));
SELECT pg_temp.sem(t.ev('sem_uid', 'u2', 'insert', '{"uid": "u1"}'));
SELECT * FROM state.get_type('sem_uid', 'sem');

-- ---------------------------------------------------------------------------
-- Postgres constraints apply
-- ---------------------------------------------------------------------------
-- NOT NULL (a required schema property)
SELECT pg_temp.sem(t.ev('sem_typed', 'k4', 'insert', '{"n": 1}'));
SELECT pg_temp.sem(t.ev('sem_typed', 'k4', 'insert', '{"name": null}'));
SELECT pg_temp.sem(t.ev('sem_typed', 'k1', 'update', '{"n": 2}'));
CREATE TABLE sem_cons (id text PRIMARY KEY, name text NOT NULL, score int CHECK (score >= 0),
                       email text UNIQUE);
SELECT state.create_collection('sem_cons', table_name => 'sem_cons', stream => 'sem');
SELECT pg_temp.sem(t.ev('sem_cons', 'c1', 'insert', '{"score": 1}'));
-- CHECK
SELECT pg_temp.sem(t.ev('sem_cons', 'c1', 'insert', '{"name": "x", "score": -1}'));
-- UNIQUE, within one batch: the whole batch is rejected
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_cons', 'c1', 'insert', '{"name": "a", "email": "e@x"}'),
                                     t.ev('sem_cons', 'c2', 'insert', '{"name": "b", "email": "e@x"}')));
SELECT count(*) AS sem_cons_rows FROM sem_cons;
-- UNIQUE across batches
SELECT pg_temp.sem(t.ev('sem_cons', 'c1', 'insert', '{"name": "a", "email": "e@x"}'));
SELECT pg_temp.sem(t.ev('sem_cons', 'c2', 'insert', '{"name": "b", "email": "e@x"}'));
-- an update may keep its own unique value
SELECT pg_temp.sem(t.ev('sem_cons', 'c1', 'update', '{"name": "a2", "email": "e@x"}'));
SELECT * FROM sem_cons;

-- FOREIGN KEY between two collections
CREATE TABLE sem_parent (id text PRIMARY KEY, name text);
CREATE TABLE sem_child (id text PRIMARY KEY, parent_id text REFERENCES sem_parent (id), note text);
SELECT state.create_collection('sem_parent', table_name => 'sem_parent', stream => 'sem');
SELECT state.create_collection('sem_child', table_name => 'sem_child', stream => 'sem');
-- satisfied by an earlier event of the same batch
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_parent', 'p1', 'insert', '{"name": "P1"}'),
                                     t.ev('sem_child', 'c1', 'insert', '{"parent_id": "p1"}')));
-- satisfied by an earlier batch; a NULL reference
SELECT pg_temp.sem(t.ev('sem_child', 'c2', 'insert', '{"parent_id": "p1"}'));
SELECT pg_temp.sem(t.ev('sem_child', 'c3', 'insert', '{"note": "orphan by design"}'));
-- violated: the whole batch is rejected; foreign keys are checked at the end
-- of the batch (like one statement), so the error says so
SELECT t.expect_error_like(
    $$SELECT * FROM state.apply(jsonb_build_array(
        t.ev('sem_parent', 'p2', 'insert', '{"name": "P2"}'),
        t.ev('sem_child', 'c4', 'insert', '{"parent_id": "nope"}')), 'sem')$$,
    '^end of batch \(2 events\): insert or update on table "sem_child" violates foreign key constraint "sem_child_parent_id_fkey"$');
SELECT t.expect_error_like(
    $$SELECT * FROM state.apply(t.ev('sem_parent', 'p1', 'delete'), 'sem')$$,
    '^end of batch \(1 event\): update or delete on table "sem_parent" violates foreign key constraint "sem_child_parent_id_fkey" on table "sem_child"$');
SELECT (SELECT count(*) FROM sem_parent) AS parents, (SELECT count(*) FROM sem_child) AS children;
-- deleting the child first, then the parent, in one batch
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_child', 'c1', 'delete'),
                                     t.ev('sem_child', 'c2', 'delete'),
                                     t.ev('sem_parent', 'p1', 'delete')));
SELECT (SELECT count(*) FROM sem_parent) AS parents, (SELECT count(*) FROM sem_child) AS children;

-- BEFORE and AFTER triggers on an adopted table fire
CREATE TABLE sem_trg (id text PRIMARY KEY, v text, stamp text);
CREATE TABLE sem_trg_audit (n serial, op text, id text, v text);
CREATE FUNCTION sem_trg_before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.v = 'forbidden' THEN
        RAISE EXCEPTION 'value % is forbidden', NEW.v USING ERRCODE = 'check_violation';
    END IF;
    NEW.stamp := 'before ' || TG_OP;
    RETURN NEW;
END
$$;
CREATE FUNCTION sem_trg_after() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sem_trg_audit (op, id, v)
    VALUES (TG_OP, coalesce(NEW.id, OLD.id), CASE WHEN TG_OP = 'DELETE' THEN OLD.v ELSE NEW.v END);
    RETURN NULL;
END
$$;
CREATE TRIGGER sem_trg_b BEFORE INSERT OR UPDATE ON sem_trg FOR EACH ROW EXECUTE FUNCTION sem_trg_before();
CREATE TRIGGER sem_trg_a AFTER INSERT OR UPDATE OR DELETE ON sem_trg FOR EACH ROW EXECUTE FUNCTION sem_trg_after();
SELECT state.create_collection('sem_trg', table_name => 'sem_trg', stream => 'sem');
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_trg', 't1', 'insert', '{"v": "a"}'),
                                     t.ev('sem_trg', 't1', 'update', '{"v": "b"}'),
                                     t.ev('sem_trg', 't2', 'upsert', '{"v": "c"}'),
                                     t.ev('sem_trg', 't1', 'delete')));
SELECT op, id, v FROM sem_trg_audit ORDER BY n;
SELECT * FROM sem_trg;
SELECT state.get('sem_trg', 't2', 'sem');
-- an error raised by a trigger names the event, and rolls back the batch
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_trg', 't3', 'insert', '{"v": "ok"}'),
                                     t.ev('sem_trg', 't4', 'insert', '{"v": "forbidden"}')));
SELECT count(*) AS audit_rows, (SELECT count(*) FROM sem_trg) AS rows FROM sem_trg_audit;

-- ---------------------------------------------------------------------------
-- old_value compare-and-set (check_old_value => true)
-- ---------------------------------------------------------------------------
SELECT state.create_collection('sem_cas', stream => 'sem', check_old_value => true);
SELECT state.create_collection('sem_cas_len', stream => 'sem', check_old_value => true, mode => 'lenient');
SELECT pg_temp.sem(t.ev('sem_cas', 'x', 'insert', '{"n": 1, "s": "a"}'));
-- mismatch
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('sem_cas', 'x', 'update', '{"n": 2}', '{"n": 0}'), 'sem')$$);
SELECT pg_temp.sem(t.ev('sem_cas', 'x', 'update', '{"n": 2}', '{"n": 1}'));
SELECT pg_temp.sem(t.ev('sem_cas', 'x', 'update', '{"n": 2}', 'null'));
SELECT pg_temp.sem(t.ev('sem_cas', 'x', 'delete', NULL, '{"n": 1}'));
SELECT state.get('sem_cas', 'x', 'sem');
-- equal (member order does not matter)
SELECT pg_temp.sem(t.ev('sem_cas', 'x', 'update', '{"n": 2}', '{"s": "a", "n": 1}'));
SELECT state.get('sem_cas', 'x', 'sem');
-- no old_value: no check
SELECT pg_temp.sem(t.ev('sem_cas', 'x', 'update', '{"n": 3}'));
-- a conflict in a later event rejects the whole batch
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_cas', 'y', 'insert', '1'),
                                     t.ev('sem_cas', 'x', 'update', '{"n": 4}', '{"n": 2}')));
SELECT * FROM state.get_type('sem_cas', 'sem');
-- delete with a matching old_value
SELECT pg_temp.sem(t.ev('sem_cas', 'x', 'delete', NULL, '{"n": 3}'));
-- missing entity: strict mode reports the missing key first
SELECT pg_temp.sem(t.ev('sem_cas', 'x', 'update', '{"n": 5}', '{"n": 3}'));
-- lenient: an old_value for an absent entity conflicts, unless it is null
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('sem_cas_len', 'x', 'update', '{"n": 1}', '{"n": 0}'), 'sem')$$);
SELECT pg_temp.sem(t.ev('sem_cas_len', 'x', 'upsert', '{"n": 1}', 'null'));
SELECT pg_temp.sem(t.ev('sem_cas_len', 'x', 'update', '{"n": 2}', 'null'));
SELECT pg_temp.sem(t.ev('sem_cas_len', 'x', 'update', '{"n": 2}', '{"n": 1}'));
SELECT * FROM state.get_type('sem_cas_len', 'sem');
-- without check_old_value the old_value is not compared
SELECT pg_temp.sem(t.ev('sem_docs', 'a', 'update', '{"v": 4}', '{"v": "anything"}'));
SELECT state.get('sem_docs', 'a', 'sem');
-- a typed collection compares against the stored row as state.get returns it
CREATE TABLE sem_cas_t (id text PRIMARY KEY, n int, note text DEFAULT 'd');
SELECT state.create_collection('sem_cas_t', table_name => 'sem_cas_t', stream => 'sem', check_old_value => true);
SELECT pg_temp.sem(t.ev('sem_cas_t', 'r', 'insert', '{"n": 1}'));
SELECT state.get('sem_cas_t', 'r', 'sem');
SELECT pg_temp.sem(t.ev('sem_cas_t', 'r', 'update', '{"n": 2}', '{"id": "r", "n": 1, "note": "d"}'));
SELECT pg_temp.sem(t.ev('sem_cas_t', 'r', 'update', '{"n": 3}', '{"id": "r", "n": 1, "note": "d"}'));
SELECT state.get('sem_cas_t', 'r', 'sem');

-- ---------------------------------------------------------------------------
-- document collections hold any JSON value
-- ---------------------------------------------------------------------------
SELECT pg_temp.sem(jsonb_build_array(
    t.ev('sem_docs', 'v-string', 'insert', '"a string"'),
    t.ev('sem_docs', 'v-empty', 'insert', '""'),
    t.ev('sem_docs', 'v-number', 'insert', '1.50'),
    t.ev('sem_docs', 'v-exp', 'insert', '-1.5e-7'),
    t.ev('sem_docs', 'v-true', 'insert', 'true'),
    t.ev('sem_docs', 'v-false', 'insert', 'false'),
    t.ev('sem_docs', 'v-array', 'insert', '[1, "two", null, {"three": [3]}]'),
    t.ev('sem_docs', 'v-object', 'insert', '{"nested": {"deep": [{}, []]}, "u": "ünï ✓"}')));
-- a JSON null value (the ev() helper drops SQL NULLs, so it is spelled out)
SELECT pg_temp.sem('{"type": "sem_docs", "key": "v-null", "value": null, "headers": {"operation": "insert"}}');
SELECT key, value, jsonb_typeof(value) FROM state.get_type('sem_docs', 'sem')
 WHERE key LIKE 'v-%' ORDER BY key COLLATE "C";
SELECT state.get('sem_docs', 'v-null', 'sem') AS json_null,
       state.get('sem_docs', 'v-null', 'sem') IS NULL AS is_sql_null,
       state.get('sem_docs', 'v-absent', 'sem') IS NULL AS absent_is_sql_null;
SELECT state.get_many('sem_docs', ARRAY['v-null', 'v-number', 'v-absent'], 'sem');
-- a value may be changed to a primitive and back
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_docs', 'v-string', 'update', '{"now": "object"}'),
                                     t.ev('sem_docs', 'v-object', 'update', '42')));
SELECT state.get_many('sem_docs', ARRAY['v-string', 'v-object'], 'sem');

-- ---------------------------------------------------------------------------
-- one key touched several times in one batch
-- ---------------------------------------------------------------------------
SELECT pg_temp.sem(jsonb_build_array(
    t.ev('sem_docs', 'multi', 'insert', '1'),
    t.ev('sem_docs', 'multi', 'update', '2'),
    t.ev('sem_docs', 'multi', 'delete'),
    t.ev('sem_docs', 'multi', 'insert', '3'),
    t.ev('sem_docs', 'multi', 'upsert', '4'),
    t.ev('sem_docs', 'multi2', 'insert', '1'),
    t.ev('sem_docs', 'multi2', 'delete')));
SELECT state.get('sem_docs', 'multi', 'sem') AS multi, state.get('sem_docs', 'multi2', 'sem') AS multi2;
SELECT pg_temp.sem(jsonb_build_array(
    t.ev('sem_typed', 'tm', 'insert', '{"name": "one", "n": 1}'),
    t.ev('sem_typed', 'tm', 'update', '{"name": "two"}'),
    t.ev('sem_typed', 'tm', 'delete'),
    t.ev('sem_typed', 'tm', 'insert', '{"name": "three", "n": 3}'),
    t.ev('sem_typed', 'tm', 'update', '{"name": "four", "n": 4}')));
SELECT * FROM sem_typed WHERE id = 'tm';
SELECT state.get('sem_typed', 'tm', 'sem');
-- in strict mode, each event sees the ones before it
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_docs', 'multi3', 'insert', '1'),
                                     t.ev('sem_docs', 'multi3', 'delete'),
                                     t.ev('sem_docs', 'multi3', 'delete')));
SELECT state.get('sem_docs', 'multi3', 'sem') IS NULL AS multi3_absent;
-- every event of a batch is logged, in order
SELECT state.tail('sem') AS before_multi \gset
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_docs', 'multi4', 'insert', '1'),
                                     t.ev('sem_docs', 'multi4', 'update', '2'),
                                     t.ev('sem_docs', 'multi4', 'delete')));
SELECT event->'headers'->>'operation' AS op, event->>'key' AS key, event->'value' AS value
  FROM state.changes('sem', :'before_multi');

-- volatile defaults run per row, in every batch (the defaults are planned
-- once per table and cached: a sequence or a clock must not be folded)
CREATE SEQUENCE sem_vol_seq;
CREATE TABLE sem_vol (id text PRIMARY KEY, n bigint DEFAULT nextval('sem_vol_seq'),
                      at timestamptz DEFAULT clock_timestamp(), v int);
SELECT state.create_collection('sem_vol', table_name => 'sem_vol', stream => 'sem');
SELECT pg_temp.sem(jsonb_build_array(t.ev('sem_vol', 'a', 'insert', '{"v": 1}'), t.ev('sem_vol', 'b', 'insert', '{"v": 2}')));
SELECT pg_temp.sem(t.ev('sem_vol', 'c', 'insert', '{"v": 3}'));
SELECT id, n, v FROM sem_vol ORDER BY id;
SELECT count(DISTINCT at) >= 2 AS clock_not_folded FROM sem_vol;
-- a default changed by ALTER TABLE applies to the next batch
ALTER TABLE sem_vol ALTER COLUMN n SET DEFAULT -1;
SELECT pg_temp.sem(t.ev('sem_vol', 'd', 'insert', '{"v": 4}'));
SELECT id, n, v FROM sem_vol WHERE id = 'd';

-- ---------------------------------------------------------------------------
-- clean up
-- ---------------------------------------------------------------------------
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT name FROM state.collections WHERE stream = 'sem' ORDER BY name LOOP
        PERFORM state.drop_collection(c.name, 'sem', drop_table => true);
    END LOOP;
END
$$;
DROP TABLE sem_trg_audit;
DROP FUNCTION sem_trg_before(), sem_trg_after();
DROP SEQUENCE sem_vol_seq;
