-- 10_apply: state.apply() and state.apply_text() under pgTAP.
-- Every malformed or rule-breaking batch is refused with an exact SQLSTATE
-- and message, and leaves the stream's tables and tail as they were.
\set ECHO none
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_ROLLBACK 1
\set ON_ERROR_STOP true

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS durable_state;
SET LOCAL client_min_messages = warning;

SELECT plan(96);

-- ---------------------------------------------------------------------------
-- set-up
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT state.create_collection('tap_docs', stream => 'tap')$$,
                'document collection tap_docs');
SELECT lives_ok($$SELECT state.create_collection('tap_typed', stream => 'tap', schema => '{"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}, "required": ["name"]}')$$,
                'typed collection tap_typed');
SELECT lives_ok($$SELECT state.create_collection('tap_cas', stream => 'tap', check_old_value => true)$$,
                'compare-and-set collection tap_cas');

-- What must not change after a failure: the rows of the stream's tables and its tail.
CREATE FUNCTION pg_temp.fingerprint() RETURNS text LANGUAGE sql AS $$
    SELECT format('rows %s/%s/%s, tail %s',
                  (SELECT count(*) FROM tap_docs), (SELECT count(*) FROM tap_typed),
                  (SELECT count(*) FROM tap_cas), state.tail('tap'))
$$;
CREATE TEMP TABLE tap_base (fp text);
INSERT INTO tap_base VALUES ('none yet');
CREATE FUNCTION pg_temp.remember() RETURNS void LANGUAGE sql AS $$
    UPDATE tap_base SET fp = pg_temp.fingerprint()
$$;
CREATE FUNCTION pg_temp.unchanged(what text) RETURNS text LANGUAGE sql AS $$
    SELECT is(pg_temp.fingerprint(), (SELECT fp FROM tap_base), 'nothing changed after ' || what)
$$;

SELECT lives_ok($$SELECT * FROM state.apply('[
    {"type": "tap_docs", "key": "d1", "value": {"v": 1}, "headers": {"operation": "insert"}},
    {"type": "tap_docs", "key": "d2", "value": "two", "headers": {"operation": "insert", "txid": "tx-1"}},
    {"type": "tap_typed", "key": "t1", "value": {"name": "one", "n": 1}, "headers": {"operation": "insert"}},
    {"type": "tap_cas", "key": "c1", "value": {"n": 1}, "headers": {"operation": "insert"}}]', 'tap')$$,
    'a valid batch of four inserts');
SELECT is(state.tail('tap'), '00000000000000000004', 'the tail is the fourth offset');
SELECT pg_temp.remember();
SELECT is(pg_temp.fingerprint(), 'rows 2/1/1, tail 00000000000000000004', 'fingerprint after set-up');

-- ---------------------------------------------------------------------------
-- malformed events (22023 / 22P02 / 22004)
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM state.apply('"not an event"', 'tap')$$,
                 '22023', 'events must be an event object or an array of events',
                 'a JSON scalar is refused');
SELECT pg_temp.unchanged('a JSON scalar');

SELECT throws_ok($$SELECT * FROM state.apply(NULL, 'tap')$$,
                 '22004', 'events must not be null',
                 'NULL events are refused');
SELECT pg_temp.unchanged('NULL events');

SELECT throws_ok($$SELECT * FROM state.apply('[{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}, 42]', 'tap')$$,
                 '22023', 'event 1: event must be a JSON object, not a number',
                 'an array element that is not an object is refused');
SELECT pg_temp.unchanged('a non-object array element');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "value": 1, "headers": {}}', 'tap')$$,
                 '22023', 'event 0 (type "tap_docs", key "k1"): change event has no header "operation"',
                 'a change event without operation is refused');
SELECT pg_temp.unchanged('a missing operation');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "merge"}}', 'tap')$$,
                 '22023', 'event 0 (type "tap_docs", key "k1"): unknown operation "merge"',
                 'an unknown operation is refused');
SELECT pg_temp.unchanged('an unknown operation');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": 1}}', 'tap')$$,
                 '22023', 'event 0 (type "tap_docs", key "k1"): header "operation" must be a string, not a number',
                 'a non-string operation is refused');
SELECT pg_temp.unchanged('a non-string operation');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "headers": {"operation": "insert"}}', 'tap')$$,
                 '22023', 'event 0 (type "tap_docs", key "k1"): insert event has no "value"',
                 'an insert without value is refused');
SELECT pg_temp.unchanged('an insert without value');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "d1", "headers": {"operation": "upsert"}}', 'tap')$$,
                 '22023', 'event 0 (type "tap_docs", key "d1"): upsert event has no "value"',
                 'an upsert without value is refused');
SELECT pg_temp.unchanged('an upsert without value');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "value": 1, "extra": 1, "headers": {"operation": "insert"}}', 'tap')$$,
                 '22023', 'event 0 (type "tap_docs", key "k1"): unknown member "extra" in change event',
                 'an unknown top-level member is refused');
SELECT pg_temp.unchanged('an unknown top-level member');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "priority": "high"}}', 'tap')$$,
                 '22023', 'event 0 (type "tap_docs", key "k1"): unknown member "priority" in change headers',
                 'an unknown header is refused');
SELECT pg_temp.unchanged('an unknown header');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "txid": ""}}', 'tap')$$,
                 '22023', 'event 0 (type "tap_docs", key "k1"): header "txid" must not be empty',
                 'an empty txid is refused');
SELECT pg_temp.unchanged('an empty txid');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-02-30T00:00:00Z"}}', 'tap')$$,
                 '22P02', 'event 0 (type "tap_docs", key "k1"): header "timestamp" is not an RFC 3339 date-time: "2025-02-30T00:00:00Z"',
                 'February 30 is refused');
SELECT pg_temp.unchanged('February 30');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-01-31 12:00:00Z"}}', 'tap')$$,
                 '22P02', 'event 0 (type "tap_docs", key "k1"): header "timestamp" is not an RFC 3339 date-time: "2025-01-31 12:00:00Z"',
                 'a timestamp with a space separator is refused');
SELECT pg_temp.unchanged('a space-separated timestamp');

SELECT throws_ok($$SELECT * FROM state.apply('{"headers": {"control": "truncate"}}', 'tap')$$,
                 '22023', 'event 0: unknown control "truncate"',
                 'an unknown control is refused');
SELECT pg_temp.unchanged('an unknown control');

SELECT throws_ok($$SELECT * FROM state.apply('{"headers": {"control": "reset", "operation": "delete"}}', 'tap')$$,
                 '22023', 'event 0: control event mixes control and change members',
                 'control and operation together are refused');
SELECT pg_temp.unchanged('a control event with an operation');

SELECT throws_ok($$SELECT * FROM state.apply('{"headers": {"control": "reset", "txid": "x"}}', 'tap')$$,
                 '22023', 'event 0 (control "reset"): unknown member "txid" in control headers',
                 'a control event with an extra header is refused');
SELECT pg_temp.unchanged('a control event with an extra header');

SELECT throws_ok($q$SELECT * FROM state.apply_text(E'{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}\n{"type": "tap_docs", "key": "k2",\n', 'tap')$q$,
                 '22P02', 'event 1 (line 2): invalid input syntax for type json',
                 'apply_text names the NDJSON line with broken JSON');
SELECT pg_temp.unchanged('broken NDJSON');

SELECT throws_ok($q$SELECT * FROM state.apply_text(E'{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}\n\n{"type": "tap_docs", "key": "k2", "value": 2, "headers": {"operation": "insert", "timestamp": 5}}', 'tap')$q$,
                 '22023', 'event 1 (line 3) (type "tap_docs", key "k2"): header "timestamp" must be a string, not a number',
                 'apply_text counts blank lines in its line numbers');
SELECT pg_temp.unchanged('a bad NDJSON event after a blank line');

-- ---------------------------------------------------------------------------
-- unknown type or stream (42704)
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_nope", "key": "k1", "value": 1, "headers": {"operation": "insert"}}', 'tap')$$,
                 '42704', 'event 0 (type "tap_nope", key "k1"): unknown type "tap_nope" in stream "tap"',
                 'an unknown type is refused');
SELECT pg_temp.unchanged('an unknown type');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}', 'tap_nope')$$,
                 '42704', 'stream "tap_nope" does not exist',
                 'an unknown stream is refused');
SELECT pg_temp.unchanged('an unknown stream');

-- ---------------------------------------------------------------------------
-- rules of the collections
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "d1", "value": 1, "headers": {"operation": "insert"}}', 'tap')$$,
                 '23505', 'event 0 (type "tap_docs", key "d1"): insert of a key that already exists',
                 'strict: insert of an existing key');
SELECT pg_temp.unchanged('a duplicate insert');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "zz", "value": 1, "headers": {"operation": "update"}}', 'tap')$$,
                 'P0002', 'event 0 (type "tap_docs", key "zz"): update of a key that does not exist',
                 'strict: update of a missing key');
SELECT pg_temp.unchanged('an update of a missing key');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_typed", "key": "zz", "headers": {"operation": "delete"}}', 'tap')$$,
                 'P0002', 'event 0 (type "tap_typed", key "zz"): delete of a key that does not exist',
                 'strict: delete of a missing key');
SELECT pg_temp.unchanged('a delete of a missing key');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_typed", "key": "t2", "value": {"id": "t3", "name": "x"}, "headers": {"operation": "insert"}}', 'tap')$$,
                 '22023', 'event 0 (type "tap_typed", key "t2"): primary key member "id" of the value does not match the event key',
                 'a primary-key member that differs from the key');
SELECT pg_temp.unchanged('a primary-key mismatch');

-- a generated table keeps members beyond its properties (in _extra); an
-- adopted table without an extra column refuses them
CREATE TABLE tap_adopted (id text PRIMARY KEY, name text);
SELECT state.create_collection('tap_adopted', stream => 'tap', table_name => 'tap_adopted');
SELECT pg_temp.remember();
SELECT throws_ok($$SELECT * FROM state.apply('[{"type": "tap_adopted", "key": "a1", "value": {"name": "x"}, "headers": {"operation": "insert"}}, {"type": "tap_adopted", "key": "a2", "value": {"name": "x", "colour": "red"}, "headers": {"operation": "insert"}}]', 'tap')$$,
                 '23514', 'event 1 (type "tap_adopted", key "a2"): value member "colour" has no column in table "tap_adopted"',
                 'a value member with no column');
SELECT is((SELECT count(*) FROM tap_adopted), 0::bigint, 'no row of the refused batch');
SELECT pg_temp.unchanged('a member with no column');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_typed", "key": "t2", "value": {"name": "x", "n": "7"}, "headers": {"operation": "insert"}}', 'tap')$$,
                 '23514', 'event 0 (type "tap_typed", key "t2"): value violates the schema of collection "tap_typed" at "/n" (keyword "type")',
                 'a string for an integer member (the schema says integer)');
SELECT pg_temp.unchanged('a wrong JSON type');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_typed", "key": "t2", "value": ["x"], "headers": {"operation": "insert"}}', 'tap')$$,
                 '23514', 'event 0 (type "tap_typed", key "t2"): value violates the schema of collection "tap_typed" at the top level (keyword "type")',
                 'a typed value that is not an object');
SELECT pg_temp.unchanged('a non-object typed value');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_typed", "key": "t2", "value": {"n": 2}, "headers": {"operation": "insert"}}', 'tap')$$,
                 '23514', 'event 0 (type "tap_typed", key "t2"): value violates the schema of collection "tap_typed" at the top level (keyword "required")',
                 'a required member left out');
SELECT pg_temp.unchanged('a NOT NULL violation');

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_cas", "key": "c1", "value": {"n": 2}, "old_value": {"n": 0}, "headers": {"operation": "update"}}', 'tap')$$,
                 '40001', 'event 0 (type "tap_cas", key "c1"): old_value conflict: the stored value differs',
                 'an old_value that differs from the stored value');
SELECT pg_temp.unchanged('an old_value conflict');

SELECT throws_ok($$SELECT * FROM state.apply('[
    {"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}},
    {"type": "tap_typed", "key": "t1", "value": {"name": "uno"}, "headers": {"operation": "update"}},
    {"type": "tap_docs", "key": "k1", "value": 2, "headers": {"operation": "insert"}}]', 'tap')$$,
                 '23505', 'event 2 (type "tap_docs", key "k1"): insert of a key that already exists',
                 'a batch whose last event fails');
SELECT pg_temp.unchanged('a batch whose last event fails');

-- ---------------------------------------------------------------------------
-- control events and source offsets
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM state.apply('{"headers": {"control": "snapshot-end"}}', 'tap')$$,
                 '55000', 'event 0 (control "snapshot-end"): snapshot-end without snapshot-start',
                 'snapshot-end without snapshot-start');
SELECT pg_temp.unchanged('a snapshot-end without start');

SELECT lives_ok($$SELECT * FROM state.apply('{"headers": {"control": "snapshot-start"}}', 'tap')$$,
                'snapshot-start');
SELECT pg_temp.remember();
SELECT ok((SELECT in_snapshot FROM state.streams WHERE stream = 'tap'), 'the stream is in a snapshot');
SELECT throws_ok($$SELECT * FROM state.apply('{"headers": {"control": "snapshot-start"}}', 'tap')$$,
                 '55000', 'event 0 (control "snapshot-start"): snapshot-start inside a snapshot',
                 'snapshot-start inside a snapshot');
SELECT pg_temp.unchanged('a snapshot-start inside a snapshot');
SELECT lives_ok($$SELECT * FROM state.apply('{"headers": {"control": "snapshot-end"}}', 'tap')$$,
                'snapshot-end');
SELECT ok(NOT (SELECT in_snapshot FROM state.streams WHERE stream = 'tap'), 'the snapshot is closed');
SELECT pg_temp.remember();

SELECT throws_ok($$SELECT * FROM state.apply('{"type": "tap_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}', 'tap', 'now')$$,
                 '22023', 'invalid source_offset "now"',
                 'the sentinel "now" is not a source offset');
SELECT pg_temp.unchanged('an invalid source offset');

-- ---------------------------------------------------------------------------
-- limits (54000)
-- ---------------------------------------------------------------------------
SET LOCAL durable_state.max_event_bytes = 200;
SELECT throws_ok(format('SELECT * FROM state.apply(%L, %L)',
                        jsonb_build_object('type', 'tap_docs', 'key', 'big', 'value', repeat('x', 300),
                                           'headers', jsonb_build_object('operation', 'insert')), 'tap'),
                 '54000', 'event 0 (type "tap_docs", key "big"): event is 395 bytes, more than durable_state.max_event_bytes (200)',
                 'an event over durable_state.max_event_bytes');
SELECT pg_temp.unchanged('an oversize event');
RESET durable_state.max_event_bytes;

SET LOCAL durable_state.max_batch_events = 2;
SELECT throws_ok($$SELECT * FROM state.apply('[{"headers": {"control": "reset"}}, {"headers": {"control": "reset"}}, {"headers": {"control": "reset"}}]', 'tap')$$,
                 '54000', 'batch has 3 events, more than durable_state.max_batch_events (2)',
                 'a batch over durable_state.max_batch_events');
SELECT pg_temp.unchanged('an oversize batch');
RESET durable_state.max_batch_events;

-- ---------------------------------------------------------------------------
-- valid batches and what they leave
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT * FROM state.apply('[
    {"type": "tap_docs", "key": "d1", "value": {"v": 2}, "headers": {"operation": "update"}},
    {"type": "tap_docs", "key": "d3", "value": [1, 2.50, null], "headers": {"operation": "upsert", "timestamp": "2025-01-31T12:00:00.000Z"}},
    {"type": "tap_docs", "key": "d2", "headers": {"operation": "delete"}},
    {"type": "tap_typed", "key": "t2", "value": {"id": "t2", "name": "two", "n": 2}, "headers": {"operation": "insert"}},
    {"type": "tap_typed", "key": "t1", "value": {"name": "uno"}, "headers": {"operation": "update"}},
    {"type": "tap_cas", "key": "c1", "value": {"n": 2}, "old_value": {"n": 1}, "headers": {"operation": "update"}}]', 'tap')$$,
    'a valid mixed batch');
SELECT results_eq($$SELECT key, value FROM state.get_type('tap_docs', 'tap') ORDER BY key$$,
                  $$VALUES ('d1', '{"v": 2}'::jsonb), ('d3', '[1, 2.50, null]'::jsonb)$$,
                  'get_type of the document collection');
SELECT results_eq($$SELECT key, value FROM state.get_type('tap_typed', 'tap') ORDER BY key$$,
                  $$VALUES ('t1', '{"id": "t1", "name": "uno"}'::jsonb), ('t2', '{"id": "t2", "n": 2, "name": "two"}'::jsonb)$$,
                  'get_type of the typed collection: the id is filled in, an update replaces the row');
SELECT results_eq($$SELECT key, value FROM state.get_type('tap_cas', 'tap')$$,
                  $$VALUES ('c1', '{"n": 2}'::jsonb)$$,
                  'compare-and-set applied');
SELECT is(state.get('tap_docs', 'd3', 'tap')::text, '[1, 2.50, null]', 'state.get returns the document as applied');
SELECT is(state.get('tap_docs', 'd2', 'tap'), NULL, 'a deleted entity reads as NULL');

SELECT lives_ok($q$SELECT * FROM state.apply_text(E'{"type": "tap_docs", "key": "n1", "value": 1, "headers": {"operation": "insert"}}\r\n\n  \n{"type": "tap_docs", "key": "n2", "value": 2, "headers": {"operation": "insert"}}\n', 'tap')$q$,
                'apply_text with CRLF and blank lines');
SELECT lives_ok($q$SELECT * FROM state.apply_text('[{"type": "tap_docs", "key": "n3", "value": 3, "headers": {"operation": "insert"}}]', 'tap')$q$,
                'apply_text with a JSON array');
SELECT results_eq($$SELECT key, value FROM state.get_type('tap_docs', 'tap') WHERE key LIKE 'n%' ORDER BY key$$,
                  $$VALUES ('n1', '1'::jsonb), ('n2', '2'::jsonb), ('n3', '3'::jsonb)$$,
                  'apply_text stored its events');

-- exactly-once
SELECT results_eq($$SELECT applied, skipped FROM state.apply('{"type": "tap_docs", "key": "s1", "value": 1, "headers": {"operation": "insert"}}', 'tap', 'src-1')$$,
                  $$VALUES (1::bigint, 0::bigint)$$, 'a batch with a new source offset applies');
SELECT pg_temp.remember();
SELECT results_eq($$SELECT applied, skipped FROM state.apply('{"type": "tap_docs", "key": "s1", "value": 1, "headers": {"operation": "insert"}}', 'tap', 'src-1')$$,
                  $$VALUES (0::bigint, 1::bigint)$$, 'its replay is skipped');
SELECT pg_temp.unchanged('a skipped replay');

-- reset
SELECT lives_ok($$SELECT * FROM state.apply('{"headers": {"control": "reset"}}', 'tap')$$, 'reset');
SELECT is(pg_temp.fingerprint(), 'rows 0/0/0, tail 00000000000000000017', 'reset emptied every collection and was logged');
SELECT is((SELECT event FROM state.changes('tap', '00000000000000000016')),
          '{"headers": {"control": "reset", "offset": "00000000000000000017"}}'::jsonb,
          'the reset is in the log');

SELECT * FROM finish();
ROLLBACK;
