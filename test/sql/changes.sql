-- changes: offsets, state.changes(), state.tail(), state.streams, control
-- events, exactly-once source offsets, state.snapshot() and the reads.
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never
SET timezone = 'UTC';

-- The stream's bookkeeping, without the timestamps.
CREATE VIEW pg_temp.chg_streams AS
SELECT stream, tail, retained_from, source_offset, in_snapshot, events_applied,
       events_retained, collections
  FROM state.streams WHERE stream LIKE 'chg%' ORDER BY stream;

-- Batch counters of a stream (read through to_jsonb so that a missing
-- column shows as NULL here instead of breaking the whole file).
SELECT state.create_collection('chg_docs', stream => 'chg');
SELECT state.create_collection('chg_typed', stream => 'chg', schema => $${
    "type": "object",
    "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "n": {"type": "integer"},
                   "x": {"type": "number"}, "ok": {"type": "boolean"},
                   "at": {"type": "string", "format": "date-time"},
                   "uid": {"type": "string", "format": "uuid"}, "meta": {"type": "object"},
                   "list": {"type": "array"}}}$$);
-- another stream, to check that streams are independent
SELECT state.create_collection('chg_other', stream => 'chg_other');

-- ---------------------------------------------------------------------------
-- an empty stream
-- ---------------------------------------------------------------------------
SELECT state.tail('chg') AS tail;
SELECT * FROM state.changes('chg');
SELECT * FROM pg_temp.chg_streams;

-- ---------------------------------------------------------------------------
-- offsets
-- ---------------------------------------------------------------------------
SELECT * FROM state.apply(jsonb_build_array(
    t.ev('chg_docs', 'a', 'insert', '{"v": 1}'),
    t.ev('chg_docs', 'b', 'insert', '{"v": 2}'),
    t.ev('chg_typed', 't1', 'insert', '{"name": "one", "n": 1}')), 'chg');
SELECT * FROM state.apply(t.ev('chg_docs', 'a', 'update', '{"v": 10}'), 'chg');
-- the client's headers.offset is replaced by the stream's
SELECT * FROM state.apply($${"type": "chg_docs", "key": "c", "value": 3,
    "headers": {"operation": "insert", "offset": "client-99", "txid": "tx-c",
                "timestamp": "2025-01-31T12:00:00Z"}}$$, 'chg');
SELECT * FROM state.apply(t.ev('chg_docs', 'b', 'delete'), 'chg');
SELECT * FROM state.apply(t.ev('chg_other', 'o', 'insert', '"other stream"'), 'chg_other');
SELECT * FROM state.apply(t.ev('chg_typed', 't2', 'upsert', '{"name": "two"}'), 'chg');
SELECT * FROM state.changes('chg');
-- 20 digits, strictly increasing, and equal to headers.offset
SELECT count(*) AS events,
       bool_and("offset" ~ '^[0-9]{20}$') AS twenty_digits,
       bool_and("offset" = event->'headers'->>'offset') AS header_matches,
       bool_and(prev IS NULL OR "offset" > prev) AS increasing,
       bool_and(prev IS NULL OR "offset"::bigint = prev::bigint + 1) AS dense,
       max("offset") = state.tail('chg') AS last_is_tail
  FROM (SELECT "offset", event, lag("offset") OVER () AS prev FROM state.changes('chg')) x;
SELECT state.tail('chg') AS tail, state.tail('chg_other') AS other_tail;
SELECT * FROM state.changes('chg_other');

-- a batch of 2500 events: offsets stay dense and in order across the log's
-- internal segments, and reads may start anywhere
SELECT state.create_collection('chg_big', stream => 'chg_big');
SELECT applied, last_offset FROM state.apply(
    (SELECT jsonb_agg(t.ev('chg_big', 'k' || i, 'insert', to_jsonb(i)) ORDER BY i)
       FROM generate_series(1, 2500) i), 'chg_big');
SELECT count(*) AS events, min("offset") AS first, max("offset") AS last,
       bool_and("offset"::bigint = (event->>'value')::bigint) AS offsets_match_order
  FROM state.changes('chg_big', '-1', 10000);
SELECT "offset", event->>'key' AS key FROM state.changes('chg_big', '00000000000000000998', 4);
SELECT "offset", event->>'key' AS key FROM state.changes('chg_big', '00000000000000002000', 2);
SELECT "offset", event->>'key' AS key FROM state.changes('chg_big', '00000000000000002499');

-- from the middle, from the tail, with max_events
SELECT "offset", event->>'key' AS key FROM state.changes('chg', '00000000000000000003');
SELECT "offset", event->>'key' AS key FROM state.changes('chg', since => '00000000000000000000');
SELECT "offset", event->>'key' AS key FROM state.changes('chg', '-1', 2);
SELECT "offset", event->>'key' AS key FROM state.changes('chg', '00000000000000000002', 2);
SELECT "offset", event->>'key' AS key FROM state.changes('chg', '-1', 0);
SELECT "offset", event->>'key' AS key FROM state.changes('chg', NULL);
SELECT * FROM state.changes('chg', 'now');
SELECT * FROM state.changes('chg', state.tail('chg'));
SELECT * FROM state.changes('chg', '00000000000000000999');
-- paging with max_events reads every event once
WITH RECURSIVE pages(n, since, got) AS (
    SELECT 0, '-1'::text, 0::bigint
    UNION ALL
    SELECT n + 1, coalesce((SELECT max("offset") FROM state.changes('chg', since, 2)), since),
           (SELECT count(*) FROM state.changes('chg', since, 2))
      FROM pages WHERE n = 0 OR got > 0
)
SELECT n AS page, since, got FROM pages;
-- invalid offsets and arguments
SELECT t.expect_error_verbose($$SELECT * FROM state.changes('chg', 'abc')$$);
SELECT t.expect_error($$SELECT * FROM state.changes('chg', '12')$$);
SELECT t.expect_error($$SELECT * FROM state.changes('chg', '-2')$$);
SELECT t.expect_error($$SELECT * FROM state.changes('chg', '')$$);
SELECT t.expect_error($$SELECT * FROM state.changes('chg', ' 00000000000000000001')$$);
SELECT t.expect_error($$SELECT * FROM state.changes('chg', '0000000000000000000a')$$);
SELECT t.expect_error($$SELECT * FROM state.changes('chg', '000000000000000000001')$$);
SELECT t.expect_error($$SELECT * FROM state.changes('chg', '99999999999999999999')$$);
SELECT t.expect_error($$SELECT * FROM state.changes('chg', 'NOW')$$);
SELECT t.expect_error($$SELECT * FROM state.changes('chg', '-1', -1)$$);
SELECT t.expect_error($$SELECT * FROM state.changes('chg', '-1', NULL)$$);
SELECT t.expect_error_verbose($$SELECT * FROM state.changes('chg_no_such_stream')$$);
SELECT t.expect_error($$SELECT state.tail('chg_no_such_stream')$$);

-- ---------------------------------------------------------------------------
-- state.streams
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.chg_streams;

-- ---------------------------------------------------------------------------
-- control events
-- ---------------------------------------------------------------------------
-- snapshot-start / snapshot-end are logged and tracked
SELECT * FROM state.apply('{"headers": {"control": "snapshot-start"}}', 'chg');
SELECT in_snapshot FROM state.streams WHERE stream = 'chg';
SELECT t.expect_error_verbose($$SELECT * FROM state.apply('{"headers": {"control": "snapshot-start"}}', 'chg')$$);
-- changes may be applied inside a snapshot
SELECT * FROM state.apply(t.ev('chg_docs', 'in-snap', 'insert', '1'), 'chg');
SELECT * FROM state.apply('{"headers": {"control": "snapshot-end", "offset": "upstream-7"}}', 'chg');
SELECT in_snapshot FROM state.streams WHERE stream = 'chg';
SELECT t.expect_error_verbose($$SELECT * FROM state.apply('{"headers": {"control": "snapshot-end"}}', 'chg')$$);
-- in one batch; an error leaves the flag as it was
SELECT * FROM state.apply('[{"headers": {"control": "snapshot-start"}}, {"headers": {"control": "snapshot-end"}}]', 'chg');
SELECT t.expect_error($$SELECT * FROM state.apply('[{"headers": {"control": "snapshot-start"}}, {"headers": {"control": "snapshot-start"}}]', 'chg')$$);
SELECT t.expect_error($$SELECT * FROM state.apply('[{"headers": {"control": "snapshot-start"}}, {"headers": {"control": "snapshot-end"}}, {"headers": {"control": "snapshot-end"}}]', 'chg')$$);
SELECT in_snapshot FROM state.streams WHERE stream = 'chg';
SELECT t.expect_error($$SELECT * FROM state.apply('[{"headers": {"control": "snapshot-start"}}, {"type": "chg_docs", "key": "a", "value": 0, "headers": {"operation": "insert"}}]', 'chg')$$);
SELECT in_snapshot FROM state.streams WHERE stream = 'chg';
-- streams track snapshots independently
SELECT * FROM state.apply('{"headers": {"control": "snapshot-start"}}', 'chg_other');
SELECT stream, in_snapshot FROM pg_temp.chg_streams;
SELECT * FROM state.apply('{"headers": {"control": "snapshot-end"}}', 'chg_other');
SELECT "offset", event FROM state.changes('chg', '00000000000000000007');

-- reset empties every collection of the stream (and only of that stream)
SELECT state.tail('chg') AS before_reset \gset
SELECT (SELECT count(*) FROM chg_docs) AS docs, (SELECT count(*) FROM chg_typed) AS typed,
       (SELECT count(*) FROM chg_other) AS other;
SELECT * FROM state.apply('{"headers": {"control": "reset"}}', 'chg');
SELECT (SELECT count(*) FROM chg_docs) AS docs, (SELECT count(*) FROM chg_typed) AS typed,
       (SELECT count(*) FROM chg_other) AS other;
SELECT * FROM state.changes('chg', :'before_reset');
-- a reset in the middle of a batch: events after it rebuild the state
SELECT * FROM state.apply(jsonb_build_array(
    t.ev('chg_docs', 'gone', 'insert', '1'),
    '{"headers": {"control": "reset", "offset": "r-2"}}'::jsonb,
    t.ev('chg_docs', 'gone', 'insert', '2'),
    t.ev('chg_docs', 'kept', 'insert', '3')), 'chg');
SELECT * FROM state.get_type('chg_docs', 'chg');
SELECT * FROM pg_temp.chg_streams WHERE stream = 'chg';
-- reset also empties collections that reference each other (here the
-- referenced type sorts first)
CREATE TABLE chg_fk_a_parent (id text PRIMARY KEY);
CREATE TABLE chg_fk_b_child (id text PRIMARY KEY, parent text REFERENCES chg_fk_a_parent (id));
SELECT state.create_collection('chg_fk_a_parent', table_name => 'chg_fk_a_parent', stream => 'chg_fk');
SELECT state.create_collection('chg_fk_b_child', table_name => 'chg_fk_b_child', stream => 'chg_fk');
SELECT applied FROM state.apply(jsonb_build_array(
    t.ev('chg_fk_a_parent', 'p', 'insert', '{}'),
    t.ev('chg_fk_b_child', 'c', 'insert', '{"parent": "p"}')), 'chg_fk');
SELECT t.expect_error($$SELECT * FROM state.apply('{"headers": {"control": "reset"}}', 'chg_fk')$$);
SELECT (SELECT count(*) FROM chg_fk_a_parent) AS parents, (SELECT count(*) FROM chg_fk_b_child) AS children,
       state.tail('chg_fk') AS tail;

-- ---------------------------------------------------------------------------
-- exactly-once: source_offset
-- ---------------------------------------------------------------------------
SELECT state.create_collection('chg_src', stream => 'chg_src');
SELECT * FROM state.apply(jsonb_build_array(t.ev('chg_src', 'a', 'insert', '1'),
                                            t.ev('chg_src', 'b', 'insert', '1')),
                          'chg_src', 'src-0001');
SELECT * FROM state.apply(t.ev('chg_src', 'a', 'update', '2'), 'chg_src', 'src-0002');
SELECT stream, tail, source_offset FROM pg_temp.chg_streams WHERE stream = 'chg_src';
-- replays of the last and of an older batch are skipped: nothing changes
SELECT * FROM state.apply(t.ev('chg_src', 'a', 'update', '2'), 'chg_src', 'src-0002');
SELECT * FROM state.apply(jsonb_build_array(t.ev('chg_src', 'a', 'insert', '1'),
                                            t.ev('chg_src', 'b', 'insert', '1')),
                          'chg_src', 'src-0001');
SELECT * FROM state.apply_text(E'{"type": "chg_src", "key": "z", "value": 1, "headers": {"operation": "insert"}}\n', 'chg_src', 'src-0000');
SELECT * FROM state.get_type('chg_src', 'chg_src');
SELECT stream, tail, source_offset, events_applied FROM pg_temp.chg_streams WHERE stream = 'chg_src';
SELECT count(*) AS logged FROM state.changes('chg_src');
-- a failed batch does not record its source offset
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('chg_src', 'a', 'insert', '3'), 'chg_src', 'src-0003')$$);
SELECT source_offset FROM state.streams WHERE stream = 'chg_src';
SELECT * FROM state.apply(t.ev('chg_src', 'a', 'update', '3'), 'chg_src', 'src-0003');
-- a batch without source_offset applies and keeps the recorded one
SELECT * FROM state.apply(t.ev('chg_src', 'c', 'insert', '1'), 'chg_src');
SELECT source_offset FROM state.streams WHERE stream = 'chg_src';
-- source offsets compare as strings, byte by byte
SELECT applied, skipped FROM state.apply(t.ev('chg_src', 'd', 'insert', '1'), 'chg_src', 'src-0003a');
SELECT applied, skipped FROM state.apply(t.ev('chg_src', 'd', 'update', '1'), 'chg_src', 'src-0003');
SELECT applied, skipped FROM state.apply(t.ev('chg_src', 'd', 'update', '2'), 'chg_src', 'src-1');
SELECT applied, skipped FROM state.apply(t.ev('chg_src', 'd', 'update', '3'), 'chg_src', 'src-0999');
SELECT * FROM state.get_type('chg_src', 'chg_src');
-- invalid source offsets
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('chg_src', 'e', 'insert', '1'), 'chg_src', '-1')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('chg_src', 'e', 'insert', '1'), 'chg_src', 'now')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('chg_src', 'e', 'insert', '1'), 'chg_src', '')$$);
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('chg_src', 'e', 'insert', '1'), 'chg_src', 'a/b')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('chg_src', 'e', 'insert', '1'), 'chg_src', 'a,b')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('chg_src', 'e', 'insert', '1'), 'chg_src', 'a&b')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('chg_src', 'e', 'insert', '1'), 'chg_src', 'a=b')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('chg_src', 'e', 'insert', '1'), 'chg_src', 'a?b')$$);
SELECT t.expect_error($$SELECT * FROM state.apply_text('{"type": "chg_src", "key": "e", "value": 1, "headers": {"operation": "insert"}}', 'chg_src', 'now')$$);
SELECT stream, tail, source_offset, events_applied FROM pg_temp.chg_streams WHERE stream = 'chg_src';

-- ---------------------------------------------------------------------------
-- reads round-trip what was applied
-- ---------------------------------------------------------------------------
-- document collections: byte-for-byte jsonb equality
CREATE TEMP TABLE chg_values (k text, v jsonb);
INSERT INTO chg_values VALUES
    ('obj', '{"b": 1, "a": [1.50, "x", {"z": null}], "nested": {"deep": {"deeper": [[], {}]}}}'),
    ('str', '"ünïcødé ✓ \"quoted\" \\ back\nslash"'),
    ('num', '12345678901234567890.123456789000'),
    ('neg', '-0.0'),
    ('exp', '1E+2'),
    ('true', 'true'),
    ('null', 'null'),
    ('arr', '[1, [2, [3, [4]]], "five", false]'),
    ('empty-obj', '{}'),
    ('empty-arr', '[]'),
    ('key with spaces/and ''quotes''', '{"k": "v"}');
SELECT * FROM state.apply((SELECT jsonb_agg(t.ev('chg_docs', k, 'upsert', v)) FROM chg_values), 'chg');
SELECT k, state.get('chg_docs', k, 'chg') AS got,
       state.get('chg_docs', k, 'chg')::text = v::text AS same_text,
       state.get('chg_docs', k, 'chg') = v AS same_jsonb
  FROM chg_values ORDER BY k COLLATE "C";
SELECT bool_and(g.value::text = v.v::text) AND count(*) = 11 AS get_type_same
  FROM state.get_type('chg_docs', 'chg') g JOIN chg_values v ON v.k = g.key;
SELECT state.get_many('chg_docs', (SELECT array_agg(k ORDER BY k) FROM chg_values), 'chg')
     = (SELECT jsonb_object_agg(k, v) FROM chg_values) AS get_many_same;
SELECT state.get_many('chg_docs', ARRAY['obj', 'nope', NULL, 'num', 'obj'], 'chg');
SELECT state.get_many('chg_docs', ARRAY[]::text[], 'chg');
SELECT state.get_many('chg_docs', NULL, 'chg') IS NULL AS null_keys;
SELECT state.get('chg_docs', 'nope', 'chg') IS NULL AS absent, state.get('chg_docs', NULL, 'chg') IS NULL AS null_key;
-- the key is compared exactly
SELECT state.get('chg_docs', 'OBJ', 'chg') IS NULL AS case_sensitive, state.get('chg_docs', 'obj ', 'chg') IS NULL AS no_trim;
-- typed collections: the key member is filled in, SQL NULL columns are
-- left out, numbers stay numbers, and timestamps and uuids come back exactly
-- as applied (the extra column keeps their text)
SELECT * FROM state.apply(jsonb_build_array(
    t.ev('chg_typed', 'rt1', 'insert', $${"name": "full", "n": -9007199254740993, "x": 0.10,
        "ok": false, "at": "2025-01-31T12:00:00.000+01:00", "uid": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "meta": {"b": [1, {"c": null}], "a": "x"}, "list": [3, 2, 1]}$$),
    t.ev('chg_typed', 'rt2', 'insert', '{"id": "rt2", "list": []}')), 'chg');
SELECT * FROM state.get_type('chg_typed', 'chg') WHERE key LIKE 'rt%';
SELECT state.get('chg_typed', 'rt1', 'chg')::text
     = '{"id": "rt1", "name": "full", "n": -9007199254740993, "x": 0.10, "ok": false,
         "at": "2025-01-31T12:00:00.000+01:00", "uid": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
         "meta": {"b": [1, {"c": null}], "a": "x"}, "list": [3, 2, 1]}'::jsonb::text AS rt1_same;
SELECT (state.get('chg_typed', 'rt1', 'chg')->>'at')::timestamptz = '2025-01-31T12:00:00.000+01:00'::timestamptz AS same_instant;
SELECT state.get_many('chg_typed', ARRAY['rt2', 'rt1', 'missing'], 'chg') ? 'rt1' AS has_rt1,
       state.get_many('chg_typed', ARRAY['rt2', 'rt1', 'missing'], 'chg')->'rt2' AS rt2;
-- reads of unknown types and streams
SELECT t.expect_error($$SELECT state.get('chg_nope', 'a', 'chg')$$);
SELECT t.expect_error($$SELECT state.get('chg_docs', 'a', 'chg_no_such_stream')$$);
SELECT t.expect_error($$SELECT state.get_many('chg_docs', ARRAY['a'], 'chg_no_such_stream')$$);
SELECT t.expect_error($$SELECT * FROM state.get_type('chg_docs', 'chg_no_such_stream')$$);
SELECT t.expect_error($$SELECT * FROM state.get_type('chg_docs', NULL)$$);

-- ---------------------------------------------------------------------------
-- state.snapshot()
-- ---------------------------------------------------------------------------
SELECT * FROM state.snapshot('chg');
SELECT count(*) AS events,
       (array_agg(ev ORDER BY ord))[1]->'headers'->>'offset' = state.tail('chg') AS start_at_tail,
       (array_agg(ev ORDER BY ord DESC))[1]->'headers'->>'offset' = state.tail('chg') AS end_at_tail
  FROM state.snapshot('chg') WITH ORDINALITY AS s(ev, ord);
-- like state.changes() and state.tail(), an unknown stream is an error
SELECT t.expect_error($$SELECT * FROM state.snapshot('chg_no_such_stream')$$);
-- applying a snapshot to a fresh stream reproduces the state
SELECT state.create_collection('chg_copy_docs', type => 'chg_docs', stream => 'chg_copy');
SELECT state.create_collection('chg_copy_typed', type => 'chg_typed', stream => 'chg_copy',
    schema => (SELECT schema FROM state.collections WHERE name = 'chg_typed'));
SELECT * FROM state.apply((SELECT jsonb_agg(ev ORDER BY ord) FROM state.snapshot('chg') WITH ORDINALITY AS s(ev, ord)),
                          'chg_copy');
SELECT t AS type,
       (SELECT count(*) FROM state.get_type(t, 'chg')) AS source,
       (SELECT count(*) FROM state.get_type(t, 'chg_copy')) AS copy,
       NOT EXISTS (SELECT * FROM state.get_type(t, 'chg') EXCEPT SELECT * FROM state.get_type(t, 'chg_copy'))
       AND NOT EXISTS (SELECT * FROM state.get_type(t, 'chg_copy') EXCEPT SELECT * FROM state.get_type(t, 'chg'))
         AS same
  FROM unnest(ARRAY['chg_docs', 'chg_typed']) AS t;
SELECT stream, in_snapshot, events_applied FROM pg_temp.chg_streams WHERE stream = 'chg_copy';
-- and the copy's snapshot is the source's, but for the offsets
SELECT count(*) AS differing FROM (
    (SELECT ev FROM state.snapshot('chg') ev WHERE ev ? 'type'
     EXCEPT SELECT ev FROM state.snapshot('chg_copy') ev WHERE ev ? 'type')
    UNION ALL
    (SELECT ev FROM state.snapshot('chg_copy') ev WHERE ev ? 'type'
     EXCEPT SELECT ev FROM state.snapshot('chg') ev WHERE ev ? 'type')) d;

-- ---------------------------------------------------------------------------
-- changes() writes headers.offset into each stored event's bytes (src/changes.c):
-- the same jsonb as jsonb_set(event, '{headers,offset}', offset), for values of
-- every kind and size (numbers and containers are aligned), headers with keys
-- that sort before and after "offset", a client's offset, control events
-- ---------------------------------------------------------------------------
SELECT state.create_collection('chg_bytes', stream => 'chg_bytes');
SELECT applied FROM state.apply((SELECT jsonb_agg(jsonb_build_object('type', 'chg_bytes', 'key', 'k' || g,
    'value', CASE g % 7 WHEN 0 THEN to_jsonb(g * 1.5) WHEN 1 THEN jsonb_build_object('a', g, 'b',
                 jsonb_build_array(1, 2.25, 'x', null, true, jsonb_build_object('z', -g)), 'c', repeat('y', g % 50))
             WHEN 2 THEN to_jsonb('s' || repeat('t', g % 5)) WHEN 3 THEN 'null'::jsonb WHEN 4 THEN 'true'::jsonb
             WHEN 5 THEN (SELECT jsonb_object_agg('p' || i, i * 0.5) FROM generate_series(1, 40) i)
             ELSE jsonb_build_array(g, g + 0.1, repeat('w', 300)) END,
    'headers', CASE g % 3 WHEN 0 THEN jsonb_build_object('operation', 'upsert', 'txid', 'chg-b' || g,
                                                         'timestamp', '2025-01-01T00:00:00Z')
                          WHEN 1 THEN jsonb_build_object('operation', 'upsert', 'offset', 'client-' || g)
                          ELSE jsonb_build_object('operation', 'upsert') END)) FROM generate_series(1, 300) g), 'chg_bytes');
SELECT applied FROM state.apply('{"headers": {"control": "snapshot-start"}}', 'chg_bytes');
SELECT applied FROM state.apply('[{"type": "chg_bytes", "key": "k1", "headers": {"operation": "delete"}},
                                  {"headers": {"control": "reset"}}]', 'chg_bytes');
SELECT count(*) AS events,
       count(*) FILTER (WHERE c.event = x.ev AND c.event::text = x.ev::text
                          AND jsonb_hash_extended(c.event, 7) = jsonb_hash_extended(x.ev, 7)
                          AND c.event @> x.ev AND x.ev @> c.event) AS same,
       count(*) FILTER (WHERE c.event->'headers'->>'offset' = c."offset"
                          AND c.event->'value' IS NOT DISTINCT FROM x.ev->'value'
                          AND c.event #> '{value,b,5,z}' IS NOT DISTINCT FROM x.ev #> '{value,b,5,z}') AS paths
  FROM state.changes('chg_bytes', '-1', 1000) c
  JOIN (SELECT l.first_seq + e.ord - 1 AS seq,
               jsonb_set(e.ev, '{headers,offset}', to_jsonb(state.format_offset(l.first_seq + e.ord - 1))) AS ev
          FROM state.log l CROSS JOIN LATERAL unnest(l.events) WITH ORDINALITY AS e(ev, ord)
         WHERE l.stream_id = (SELECT id FROM state._streams WHERE name = 'chg_bytes')) x
    ON x.seq = c."offset"::bigint;

-- ---------------------------------------------------------------------------
-- clean up
-- ---------------------------------------------------------------------------
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT name, stream FROM state.collections WHERE stream LIKE 'chg%'
             ORDER BY name DESC LOOP  -- chg_fk_b_child before chg_fk_a_parent
        PERFORM state.drop_collection(c.name, c.stream, drop_table => true);
    END LOOP;
END
$$;
