-- malformed: every malformed or unresolvable event is rejected with a
-- SQLSTATE and a message naming the event (index, and type and key where
-- they are known), and nothing of the batch is applied.
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT state.create_collection('mal_docs', stream => 'mal');
SELECT state.create_collection('mal_typed', stream => 'mal',
    schema => '{"type": "object", "properties": {"name": {"type": "string"}}}');
SELECT * FROM state.apply($$[
    {"type": "mal_docs", "key": "d1", "value": {"v": 1}, "headers": {"operation": "insert"}},
    {"type": "mal_typed", "key": "t1", "value": {"name": "one"}, "headers": {"operation": "insert"}}
]$$, 'mal');

-- rows in the stream's tables
CREATE FUNCTION pg_temp.nrows() RETURNS bigint
LANGUAGE sql AS $$ SELECT (SELECT count(*) FROM mal_docs) + (SELECT count(*) FROM mal_typed) $$;

-- Runs sql; returns its error (SQLSTATE: message) and the row count and the
-- stream's tail before and after.
CREATE FUNCTION pg_temp.bad_sql(sql text, OUT error text, OUT rows_before bigint,
                                OUT rows_after bigint, OUT tail_before bigint,
                                OUT tail_after bigint)
LANGUAGE plpgsql AS $$
BEGIN
    rows_before := pg_temp.nrows();
    SELECT tail::bigint INTO tail_before FROM state.streams WHERE stream = 'mal';
    BEGIN
        EXECUTE sql;
        error := 'no error';
    EXCEPTION WHEN OTHERS THEN
        error := SQLSTATE || ': ' || SQLERRM;
    END;
    rows_after := pg_temp.nrows();
    SELECT tail::bigint INTO tail_after FROM state.streams WHERE stream = 'mal';
END
$$;

-- The same for state.apply(events, 'mal').
CREATE FUNCTION pg_temp.bad(events jsonb, OUT error text, OUT rows_before bigint,
                            OUT rows_after bigint, OUT tail_before bigint,
                            OUT tail_after bigint)
LANGUAGE sql AS $$
    SELECT * FROM pg_temp.bad_sql(format('SELECT * FROM state.apply(%L::jsonb, %L)', events, 'mal'))
$$;

SELECT pg_temp.nrows() AS rows, tail FROM state.streams WHERE stream = 'mal';

-- ---------------------------------------------------------------------------
-- the events argument
-- ---------------------------------------------------------------------------
-- neither an object nor an array
SELECT * FROM pg_temp.bad('5');
SELECT * FROM pg_temp.bad('"an event"');
SELECT * FROM pg_temp.bad('true');
SELECT * FROM pg_temp.bad('null');
-- SQL NULL
SELECT * FROM pg_temp.bad_sql($$SELECT * FROM state.apply(NULL, 'mal')$$);
-- an element of the array that is not an object
SELECT * FROM pg_temp.bad('[5]');
SELECT * FROM pg_temp.bad('[null]');
SELECT * FROM pg_temp.bad('[[]]');
SELECT * FROM pg_temp.bad('[{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}, "x"]');

-- ---------------------------------------------------------------------------
-- type and key
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.bad('{"key": "k1", "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "", "key": "k1", "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": 5, "key": "k1", "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": null, "key": "k1", "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": ["mal_docs"], "key": "k1", "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "", "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": 1, "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": null, "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": {"id": "k1"}, "value": 1, "headers": {"operation": "insert"}}');

-- ---------------------------------------------------------------------------
-- headers and operation
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": []}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": null}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": "insert"}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"txid": "x"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "merge"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "INSERT"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": ""}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": 1}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": null}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": ["insert"]}}');
-- insert, update and upsert need a value
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "d1", "headers": {"operation": "update"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "d1", "headers": {"operation": "upsert"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "d1", "old_value": {"v": 1}, "headers": {"operation": "update"}}');

-- ---------------------------------------------------------------------------
-- unknown members
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "extra": true, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "Value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "offset": "1", "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "foo": 1}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "Operation": "insert"}}');

-- ---------------------------------------------------------------------------
-- txid and timestamp
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "txid": 42}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "txid": null}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "txid": ""}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": 1738324800}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": null}}');
-- not RFC 3339
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-13-01T00:00:00Z"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-00-10T00:00:00Z"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-02-30T00:00:00Z"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2023-02-29T00:00:00Z"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-04-31T00:00:00Z"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-01-01T00:00:00"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-01-01 00:00:00Z"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-01-01"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-01-01T24:00:00Z"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-01-01T00:60:00Z"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-01-01T00:00:00+0100"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-01-01T00:00:00.Z"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "2025-1-01T00:00:00Z"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": "Fri, 31 Jan 2025 12:00:00 GMT"}}');
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert", "timestamp": ""}}');

-- ---------------------------------------------------------------------------
-- control events
-- ---------------------------------------------------------------------------
-- control and change members mixed
SELECT * FROM pg_temp.bad('{"type": "mal_docs", "key": "k1", "headers": {"control": "reset"}}');
SELECT * FROM pg_temp.bad('{"headers": {"control": "reset", "operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"value": 1, "headers": {"control": "reset"}}');
-- unknown or malformed control
SELECT * FROM pg_temp.bad('{"headers": {"control": "truncate"}}');
SELECT * FROM pg_temp.bad('{"headers": {"control": "RESET"}}');
SELECT * FROM pg_temp.bad('{"headers": {"control": 1}}');
SELECT * FROM pg_temp.bad('{"headers": {"control": null}}');
-- control event with an extra member
SELECT * FROM pg_temp.bad('{"headers": {"control": "reset", "txid": "x"}}');
SELECT * FROM pg_temp.bad('{"headers": {"control": "snapshot-start", "offset": "1", "from": "0"}}');
SELECT * FROM pg_temp.bad('{"headers": {"control": "reset", "offset": 5}}');
SELECT * FROM pg_temp.bad('{"headers": {"control": "reset", "offset": ""}}');

-- ---------------------------------------------------------------------------
-- a bad event anywhere rejects the whole batch
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.bad($$[
    {"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}},
    {"type": "mal_docs", "key": "k2", "value": 2, "headers": {"operation": "nope"}}]$$);
SELECT * FROM pg_temp.bad($$[
    {"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}},
    {"type": "mal_typed", "key": "t1", "value": {"name": "x"}, "headers": {"operation": "update"}},
    {"headers": {"control": "reset"}},
    {"type": "mal_docs", "key": "k2", "headers": {"operation": "insert"}}]$$);
-- a reset followed by a bad event: nothing is emptied
SELECT * FROM pg_temp.bad($$[
    {"headers": {"control": "reset"}},
    {"type": "mal_nope", "key": "k2", "value": 2, "headers": {"operation": "insert"}}]$$);

-- ---------------------------------------------------------------------------
-- unknown type or stream
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.bad('{"type": "mal_nope", "key": "k1", "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad('{"type": "MAL_DOCS", "key": "k1", "value": 1, "headers": {"operation": "insert"}}');
SELECT * FROM pg_temp.bad_sql($$SELECT * FROM state.apply('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}', 'mal_no_such_stream')$$);
SELECT * FROM pg_temp.bad_sql($$SELECT * FROM state.apply('{"headers": {"control": "reset"}}', 'mal_no_such_stream')$$);
SELECT * FROM pg_temp.bad_sql($$SELECT * FROM state.apply('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}', NULL)$$);
SELECT * FROM pg_temp.bad_sql($$SELECT * FROM state.apply('{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}', '')$$);

-- long types, keys and operations are shortened in messages (on a
-- character boundary)
SELECT * FROM pg_temp.bad(jsonb_build_object('type', 'mal_docs', 'key', repeat('é', 100), 'value', 1,
                                             'headers', jsonb_build_object('operation', 'update')));
SELECT * FROM pg_temp.bad(jsonb_build_object('type', 'mal_' || repeat('t', 70), 'key', repeat('k', 65), 'value', 1,
                                             'headers', jsonb_build_object('operation', 'insert')));
SELECT * FROM pg_temp.bad(jsonb_build_object('type', 'mal_docs', 'key', 'k1', 'value', 1,
                                             'headers', jsonb_build_object('operation', repeat('o', 80))));

-- ---------------------------------------------------------------------------
-- apply_text
-- ---------------------------------------------------------------------------
-- NDJSON: broken JSON on line 2 (the message names the event and the line)
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text(E'{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}\n{"type": "mal_docs", "key": "k2", "value": 2, "headers": {"operation": "insert"}\n{"type": "mal_docs", "key": "k3", "value": 3, "headers": {"operation": "insert"}}', 'mal')$q$);
-- NDJSON: blank and white-space lines are skipped but counted
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text(E'\n{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}\n\n   \n{"type": "mal_docs", "key": "k2", "value": 2, "headers": {"operation": "insert"}} trailing', 'mal')$q$);
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text(E'{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}\r\n\r\n{"type": "mal_docs", "key": "k1", "value": 2, "headers": {"operation": "insert"}}\r\n', 'mal')$q$);
-- NDJSON: a line that is JSON but not an event object
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text(E'{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}\n\n42', 'mal')$q$);
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text(E'{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}\n[{"type": "mal_docs", "key": "k2", "value": 2, "headers": {"operation": "insert"}}]', 'mal')$q$);
-- NDJSON: a rule broken on line 3
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text(E'{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}\n\n{"type": "mal_docs", "key": "k2", "value": 2, "headers": {"operation": "insert", "txid": ""}}', 'mal')$q$);
-- the array form: broken JSON, and a bad event (no line numbers)
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text(E'[{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}},\n', 'mal')$q$);
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text(E'  [{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}},\n {"type": "mal_docs", "key": "k2", "value": 2}]', 'mal')$q$);
-- NULL text
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text(NULL, 'mal')$q$);
-- nothing but blank lines is an empty batch
SELECT * FROM state.apply_text(E'\n  \n\r\n', 'mal');
SELECT * FROM state.apply_text('', 'mal');

-- ---------------------------------------------------------------------------
-- limits
-- ---------------------------------------------------------------------------
SET durable_state.max_event_bytes = 200;
SELECT * FROM pg_temp.bad(jsonb_build_object('type', 'mal_docs', 'key', 'big', 'value', repeat('x', 300),
                                             'headers', jsonb_build_object('operation', 'insert')));
SELECT * FROM pg_temp.bad(jsonb_build_array(
    jsonb_build_object('type', 'mal_docs', 'key', 'small', 'value', 1,
                       'headers', jsonb_build_object('operation', 'insert')),
    jsonb_build_object('type', 'mal_docs', 'key', 'big', 'value', repeat('x', 300),
                       'headers', jsonb_build_object('operation', 'insert'))));
SELECT * FROM pg_temp.bad_sql(format($q$SELECT * FROM state.apply_text(%L, 'mal')$q$,
    '{"type": "mal_docs", "key": "small", "value": 1, "headers": {"operation": "insert"}}' || E'\n' ||
    '{"type": "mal_docs", "key": "big", "value": "' || repeat('x', 300) || '", "headers": {"operation": "insert"}}'));
-- an event under the limit is fine
SELECT applied FROM state.apply('{"type": "mal_docs", "key": "small", "value": 1, "headers": {"operation": "insert"}}', 'mal');
SELECT applied FROM state.apply('{"type": "mal_docs", "key": "small", "headers": {"operation": "delete"}}', 'mal');
RESET durable_state.max_event_bytes;
SET durable_state.max_batch_events = 2;
SELECT * FROM pg_temp.bad($$[
    {"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}},
    {"type": "mal_docs", "key": "k2", "value": 2, "headers": {"operation": "insert"}},
    {"type": "mal_docs", "key": "k3", "value": 3, "headers": {"operation": "insert"}}]$$);
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text(E'{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}\n{"type": "mal_docs", "key": "k2", "value": 2, "headers": {"operation": "insert"}}\n{"type": "mal_docs", "key": "k3", "value": 3, "headers": {"operation": "insert"}}', 'mal')$q$);
SELECT * FROM pg_temp.bad_sql($q$SELECT * FROM state.apply_text('[{"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}}, {"type": "mal_docs", "key": "k2", "value": 2, "headers": {"operation": "insert"}}, {"type": "mal_docs", "key": "k3", "value": 3, "headers": {"operation": "insert"}}]', 'mal')$q$);
-- exactly at the limit is fine
SELECT applied FROM state.apply($$[
    {"type": "mal_docs", "key": "k1", "value": 1, "headers": {"operation": "insert"}},
    {"type": "mal_docs", "key": "k1", "headers": {"operation": "delete"}}]$$, 'mal');
RESET durable_state.max_batch_events;

-- ---------------------------------------------------------------------------
-- what is accepted: the optional headers, RFC 3339 variants
-- ---------------------------------------------------------------------------
SELECT applied FROM state.apply($$[
    {"type": "mal_docs", "key": "ok1", "value": 1, "headers": {"operation": "insert", "txid": "tx-1", "timestamp": "2025-01-31T12:00:00.000Z"}},
    {"type": "mal_docs", "key": "ok2", "value": 2, "headers": {"operation": "insert", "timestamp": "2025-01-31t12:00:00z"}},
    {"type": "mal_docs", "key": "ok3", "value": 3, "headers": {"operation": "insert", "timestamp": "2024-02-29T23:59:60.123456789+05:30"}},
    {"type": "mal_docs", "key": "ok4", "value": 4, "headers": {"operation": "insert", "timestamp": "2000-02-29T00:00:00-00:00"}},
    {"type": "mal_docs", "key": "ok5", "value": 5, "headers": {"operation": "insert", "offset": "client-offset", "from": "somewhere"}},
    {"type": "mal_docs", "key": "ok1", "value": null, "old_value": 1, "headers": {"operation": "delete"}},
    {"headers": {"control": "snapshot-start", "offset": "42"}},
    {"headers": {"control": "snapshot-end"}}]$$, 'mal');
SELECT key, value FROM state.get_type('mal_docs', 'mal');

-- the failures left no trace
SELECT pg_temp.nrows() AS rows, tail, events_applied, in_snapshot
  FROM state.streams WHERE stream = 'mal';
SELECT count(*) AS logged_events FROM state.changes('mal');

-- ---------------------------------------------------------------------------
-- clean up
-- ---------------------------------------------------------------------------
SELECT state.drop_collection('mal_docs', 'mal', true);
SELECT state.drop_collection('mal_typed', 'mal', true);
