-- json_text: state.apply_text parses events with its own JSON parser
-- (src/jsontext.c), which must give exactly what jsonb_in gives: the same
-- jsonb (numbers with their scale, duplicate keys resolved the same way,
-- escapes, unicode, nesting) and, for malformed text, the same SQLSTATE,
-- message and detail, with the event's index and line in front.
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT state.create_collection('jt_docs', 'jt_doc', stream => 'jt', mode => 'lenient');

-- JSON values to carry as an event's value (as JSON text)
CREATE TEMP TABLE jt_values (n serial, v text);
INSERT INTO jt_values (v) VALUES
    ('0'), ('-0'), ('1'), ('-1'), ('1.0'), ('1.50'), ('-0.0'), ('1e2'), ('1E+2'),
    ('1e-2'), ('0.1e-5'), ('1e100'), ('123456789012345678'), ('-123456789012345678'),
    ('1234567890123456789'), ('9223372036854775807'), ('-9223372036854775808'),
    ('99999999999999999999999999999999999.123456789'), ('0.000000000000000000001'),
    ('""'), ('"a\"b"'), ('"\\"'), ('"\/"'), ('"\b\f\n\r\t"'), ('"\u00e9"'),
    ('"\ud83d\ude00"'), ('"\u0041\u0062"'), ('"é raw"'), ('"日本語"'), ('"tab\there"'),
    ('true'), ('false'), ('null'), ('[]'), ('{}'), ('[true, false, null, 1, "x"]'),
    ('{"a": 1, "a": 2}'), ('{"b": 1, "a": 2, "b": 3}'),
    ('{"bb": 1, "a": 2, "ccc": 3, "": 4, "ab": 5, "aa": 6}'),
    ('{"x": {"x": {"x": 1, "x": [1, {"y": 2, "y": 3}]}}}'),
    (' {  "a" :[ 1 ,2 ] , "b":{ } }  '),
    (repeat('[', 10) || '1' || repeat(']', 10)),
    (repeat('[', 70) || '1' || repeat(']', 70)),
    (repeat('{"a":', 70) || '1' || repeat('}', 70)),
    ('"' || repeat('long ', 2000) || '"');
-- containers past jsonb's offset stride (32 entries), numerics and
-- containers after strings of every length (jsonb pads them to 4 bytes)
INSERT INTO jt_values (v)
SELECT '{' || string_agg(format('"%s": %s', repeat('k', i % 7) || i,
                                CASE i % 4 WHEN 0 THEN (i * 1.5)::text
                                           WHEN 1 THEN '"' || repeat('x', i % 5) || '"'
                                           WHEN 2 THEN '[1.5, {"a": "b"}, "c", ' || i || ']'
                                           ELSE 'null' END), ', ') || '}'
  FROM (VALUES (31), (32), (33), (70)) c(n), generate_series(1, c.n) i GROUP BY c.n;
INSERT INTO jt_values (v)
SELECT '[' || string_agg(CASE i % 3 WHEN 0 THEN '"' || repeat('y', i % 6) || '"'
                                    WHEN 1 THEN i::text || '.0' ELSE '{"o": [' || i || ']}' END, ', ') || ']'
  FROM (VALUES (32), (33), (100)) c(n), generate_series(1, c.n) i GROUP BY c.n;

-- one event per value, with its envelope in different shapes
CREATE TEMP TABLE jt_lines AS
SELECT n, CASE n % 4
          WHEN 0 THEN format('{"type": "jt_doc", "key": "k%s", "value": %s, "headers": {"operation": "upsert"}}', n, v)
          WHEN 1 THEN format('{"value":%s,"headers":{"operation":"upsert","txid":"t%s"},"key":"k%s","type":"jt_doc"}', v, n, n)
          WHEN 2 THEN format(E'\t{ "key" : "x", "type" : "jt_doc" , "key":"k%s", "value" : %s , "headers" : { "operation" : "upsert" } } ', n, v)
          ELSE format('{"type": "jt_doc", "key": "k%s", "value": %s, "old_value": %s, "headers": {"operation": "upsert", "timestamp": "2025-01-31T12:00:00Z"}}', n, v, v)
          END AS line
  FROM jt_values;

-- as NDJSON: every logged event and stored value is what jsonb_in makes of the line
SELECT applied FROM state.apply_text((SELECT string_agg(line, E'\n' ORDER BY n) FROM jt_lines), 'jt');
SELECT l.n, l.line::jsonb::text AS expected, e.event::text AS logged
  FROM jt_lines l
  JOIN state.log_events e ON e.stream = 'jt' AND e.seq = l.n
 WHERE e.event::text IS DISTINCT FROM l.line::jsonb::text OR e.event <> l.line::jsonb
    OR pg_column_size(ARRAY[e.event]) <> pg_column_size(ARRAY[l.line::jsonb])
    OR e.event -> 'value' IS DISTINCT FROM l.line::jsonb -> 'value'
    OR NOT e.event @> l.line::jsonb OR NOT l.line::jsonb @> e.event;
SELECT d.key, d.value::text, (l.line::jsonb -> 'value')::text AS expected
  FROM jt_lines l JOIN jt_docs d ON d.key = 'k' || l.n
 WHERE d.value::text IS DISTINCT FROM (l.line::jsonb -> 'value')::text;
SELECT count(*) AS stored FROM jt_docs;

-- as a JSON array: the same
SELECT applied FROM state.apply_text((SELECT E' [\n' || string_agg(line, E',\n' ORDER BY n) || ' ] ' FROM jt_lines), 'jt');
SELECT l.n, l.line::jsonb::text AS expected, e.event::text AS logged
  FROM jt_lines l
  JOIN state.log_events e ON e.stream = 'jt' AND e.seq = l.n + (SELECT count(*) FROM jt_lines)
 WHERE e.event::text IS DISTINCT FROM l.line::jsonb::text;

-- Malformed text: apply_text's error is jsonb_in's, named with the event
-- and line; nothing is applied.
CREATE FUNCTION pg_temp.err(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' / ' || nullif(d, ''), '');
END
$$;
CREATE TEMP TABLE jt_bad (n serial, v text);
INSERT INTO jt_bad (v) VALUES
    ('{"a": 1'), ('{"a": 1,}'), ('{"a" 1}'), ('{"a": 01}'), ('{"a": 1.}'), ('{"a": .5}'),
    ('{"a": -}'), ('{"a": 1e}'), ('{"a": 1e+}'), ('{"a": tru}'), ('{"a": truex}'), ('{"a": nul}'),
    ('{"a": 1x}'), ('{"a": "\x"}'), ('{"a": "\u00"}'), ('{"a": "\u0000"}'), ('{"a": "\ud800"}'),
    ('{"a": "\udc00"}'), ('{"a": "\ud800\u0041"}'), ('{"a": "' || chr(1) || '"}'),
    ('{"a": "' || chr(31) || '"}'), ('{"a": 1} x'), ('{"a": 1}}'), ('{a: 1}'), ($${'a': 1}$$),
    ('{"a": [1, 2}'), ('{"a": [1, 2,]}'), ('{"a": 1e999999}'), ('{"a": NaN}'), ('{"a": Infinity}'),
    ('{"a": -Infinity}'), ('{"a": 1}{"b": 2}'), ('{"a": "unterminated}'), ('{"a"}'), ('{,}'),
    ('{"a": +1}'), ('{"a": 0x10}'), ('{"a": [}'), ('{"a": ]}'), ('{"a":: 1}'), ('{"a": 1 2}');
SELECT b.n, b.v, pg_temp.err(format('SELECT * FROM state.apply_text(%L, %L)',
                                    E'\n{"type": "jt_doc", "key": "ok", "value": 1, "headers": {"operation": "upsert"}}\n' || b.v, 'jt')) AS got,
       pg_temp.err(format('SELECT %L::jsonb', b.v)) AS jsonb_in
  FROM jt_bad b
 WHERE pg_temp.err(format('SELECT * FROM state.apply_text(%L, %L)',
                          E'\n{"type": "jt_doc", "key": "ok", "value": 1, "headers": {"operation": "upsert"}}\n' || b.v, 'jt'))
       IS DISTINCT FROM regexp_replace(pg_temp.err(format('SELECT %L::jsonb', b.v)), '^(\w+): ', '\1: event 1 (line 3): ');
-- the same inside a JSON array: jsonb_in's error as it is
SELECT b.n, b.v
  FROM jt_bad b
 WHERE pg_temp.err(format('SELECT * FROM state.apply_text(%L, %L)', '[' || b.v || ']', 'jt'))
       IS DISTINCT FROM pg_temp.err(format('SELECT %L::jsonb', '[' || b.v || ']'));
-- a few, as they read
SELECT pg_temp.err($$SELECT * FROM state.apply_text(E'{"type": "jt_doc", "key": "a", "value": 1, "headers": {"operation": "upsert"}}\n{"type": "jt_doc", "key": "b", "value": 01, "headers": {"operation": "upsert"}}', 'jt')$$);
SELECT pg_temp.err($$SELECT * FROM state.apply_text(E'{"type": "jt_doc", "key": "b", "value": "\\u0000", "headers": {"operation": "upsert"}}', 'jt')$$);
SELECT pg_temp.err($$SELECT * FROM state.apply_text(E'{"type": "jt_doc", "key": "b", "value": 1e999999, "headers": {"operation": "upsert"}}', 'jt')$$);
SELECT count(*) AS events_logged FROM state.log_events WHERE stream = 'jt';
SELECT key FROM jt_docs WHERE key = 'ok';

-- Typed columns: apply_text stores what apply stores
CREATE TABLE jt_typed_a (id text PRIMARY KEY, i int, b bigint, f boolean, n numeric,
                         n2 numeric(10, 2), r float8, j jsonb, t text, ts timestamptz,
                         extra jsonb);
CREATE TABLE jt_typed_b (LIKE jt_typed_a INCLUDING ALL);
SELECT state.create_collection('jt_typed_a', 'jt_t', table_name => 'jt_typed_a', stream => 'jt_a',
                               extra_column => 'extra');
SELECT state.create_collection('jt_typed_b', 'jt_t', table_name => 'jt_typed_b', stream => 'jt_b',
                               extra_column => 'extra');
CREATE TEMP TABLE jt_typed_lines AS
SELECT n, format('{"type": "jt_t", "key": "t%s", "value": %s, "headers": {"operation": "insert"}}', n, v) AS line
  FROM (VALUES
    (1, '{"i": 1, "b": 9223372036854775807, "f": true, "n": 1.50, "n2": 3.14159, "r": 0.1, "j": {"z": 1, "a": [1.0]}, "t": "x\ny", "ts": "2025-01-31T12:00:00Z"}'),
    (2, '{"i": 1.0, "b": -1e3, "f": false, "n": 1e-3, "n2": 2, "r": 1e300, "j": "s", "t": "", "other": {"k": "v"}}'),
    (3, '{"i": null, "b": 0, "n": 123456789012345678901234567890.5, "j": null, "ts": "2025-01-31 12:00:00+00"}'),
    (4, '{"id": "t4", "t": "\u00e9\ud83d\ude00", "t": "dup wins"}')) v(n, v);
SELECT applied FROM state.apply((SELECT jsonb_agg(line::jsonb ORDER BY n) FROM jt_typed_lines), 'jt_a');
SELECT applied FROM state.apply_text((SELECT string_agg(line, E'\n' ORDER BY n) FROM jt_typed_lines), 'jt_b');
SELECT ta.id, to_jsonb(ta) AS via_apply, to_jsonb(tb) AS via_apply_text
  FROM jt_typed_a ta FULL JOIN jt_typed_b tb USING (id)
 WHERE to_jsonb(ta)::text IS DISTINCT FROM to_jsonb(tb)::text;
SELECT id, i, b, f, n, n2, r, j, t, ts, extra FROM jt_typed_b ORDER BY id;
SELECT count(*) FROM jt_typed_b;
-- a value that does not fit its column: the same error either way
SELECT pg_temp.err($$SELECT * FROM state.apply('{"type": "jt_t", "key": "t9", "value": {"i": 1.5}, "headers": {"operation": "insert"}}', 'jt_a')$$);
SELECT pg_temp.err($$SELECT * FROM state.apply_text('{"type": "jt_t", "key": "t9", "value": {"i": 1.5}, "headers": {"operation": "insert"}}', 'jt_b')$$);
SELECT pg_temp.err($$SELECT * FROM state.apply_text('{"type": "jt_t", "key": "t9", "value": {"i": 9999999999}, "headers": {"operation": "insert"}}', 'jt_b')$$);
SELECT pg_temp.err($$SELECT * FROM state.apply_text('{"type": "jt_t", "key": "t9", "value": {"f": "true"}, "headers": {"operation": "insert"}}', 'jt_b')$$);

-- state.put and state.remove build their events in jsonb's binary format
-- directly (src/event.c), and state.snapshot its insert events: the same
-- bytes jsonb_build_object makes, for every value above (strings of every
-- length before the padded value, scalars, containers past the offset
-- stride), and keys and types of several lengths
SELECT state.create_collection('jt_put', 'p', stream => 'jt_p', mode => 'lenient');
SELECT count(state.put('p', repeat('k', n % 5) || n, v::jsonb, stream => 'jt_p')) AS puts FROM jt_values;
SELECT state.remove('p', 'k1', 'jt_p') AS removed_k1;
CREATE TEMP TABLE jt_put_expected AS
SELECT n AS seq, jsonb_build_object('type', 'p', 'key', repeat('k', n % 5) || n, 'value', v::jsonb,
                                    'headers', jsonb_build_object('operation', 'upsert')) AS ev
  FROM jt_values
UNION ALL
SELECT (SELECT count(*) + 1 FROM jt_values), jsonb_build_object('type', 'p', 'key', 'k1', 'value', NULL::jsonb,
                                    'headers', jsonb_build_object('operation', 'delete'));
SELECT x.seq, x.ev::text AS expected, e.event::text AS logged
  FROM jt_put_expected x
  LEFT JOIN state.log_events e ON e.stream = 'jt_p' AND e.seq = x.seq
 WHERE e.event::text IS DISTINCT FROM x.ev::text OR e.event <> x.ev
    OR pg_column_size(ARRAY[e.event]) <> pg_column_size(ARRAY[x.ev])
    OR NOT e.event @> x.ev OR NOT x.ev @> e.event;
SELECT count(*) AS snapshot_mismatches
  FROM state.snapshot('jt_p') s
  JOIN jt_values v ON s->>'key' = repeat('k', v.n % 5) || v.n
 WHERE s <> jsonb_build_object('type', 'p', 'key', repeat('k', v.n % 5) || v.n, 'value', v.v::jsonb,
                               'headers', jsonb_build_object('operation', 'insert'))
    OR pg_column_size(ARRAY[s]) <> pg_column_size(ARRAY[jsonb_build_object('type', 'p', 'key', repeat('k', v.n % 5) || v.n,
                               'value', v.v::jsonb, 'headers', jsonb_build_object('operation', 'insert'))]);
SELECT count(*) AS snapshot_inserts FROM state.snapshot('jt_p') s WHERE s->'headers'->>'operation' = 'insert';
SELECT state.drop_collection('jt_put', 'jt_p', drop_table => true);
-- Event shapes: apply_text reads the members and headers where its parser
-- found them, apply searches for them; the outcome is the same (an array
-- of one event, so that errors name it alike; NDJSON names its line too).
CREATE TEMP TABLE jt_shapes (n serial, v text);
INSERT INTO jt_shapes (v) VALUES
    ('{"type":"jt_doc","key":"s1","value":1,"headers":{"operation":"upsert"},"headers":"x"}'),
    ('{"type":"jt_doc","key":"s2","value":1,"headers":"x","headers":{"operation":"upsert"}}'),
    ('{"type":"jt_doc","key":"s3","value":1,"headers":{"operation":"delete"},"headers":{"operation":"upsert","txid":"t3"}}'),
    ('{"headers":{"control":"nope"}}'),
    ('{"headers":{"control":"reset","operation":"upsert"}}'),
    ('{"type":"jt_doc","headers":{"control":"reset"}}'),
    ('{"headers":{"control":"reset","bogus":1}}'),
    ('{"headers":{"control":"reset","offset":""}}'),
    ('{"headers":{"control":5}}'),
    ('{"type":"jt_doc","key":"s4","value":1,"headers":{"operation":"upsert"},"extra":1}'),
    ('{"type":"jt_doc","key":"s5","value":1,"headers":{"operation":"upsert","bogus":1}}'),
    ('{"type":"jt_doc","key":"s6","value":1,"headers":{"operation":"upsert","txid":"t6","timestamp":"nope","offset":"o","from":"f"}}'),
    ('{"type":"jt_doc","key":"s7","value":1,"headers":{"operation":"upsert","txid":"t7","timestamp":"2025-01-31T12:00:00Z","offset":"o","from":"f"}}'),
    ('{"type":"jt_doc","key":"s8","value":1,"headers":{"operation":"upsert","txid":""}}'),
    ('{"type":"jt_doc","key":"s9","value":{"headers":{"operation":"x"}},"headers":{"operation":"upsert","from":{"operation":1}}}'),
    ('{"type":"jt_doc","key":"s10","value":1,"old_value":2,"headers":{"operation":"upsert"}}'),
    ('{"type":"jt_doc","key":"s11","headers":{"operation":"insert"}}'),
    ('{"type":"jt_doc","key":"s12","headers":{"operation":"delete"}}'),
    ('{"type":5,"key":"s13","value":1,"headers":{"operation":"upsert"}}'),
    ('{"typ\u0065":"jt_doc","key":"s14","value":1,"headers":{"operation":"upsert"}}'),
    ('{"type":"jt_doc","key":"s15","value":1,"headers":{"operation":"upsert","operation":"delete"}}'),
    ('{"headers":{"txid":"t16","operation":"upsert"},"value":[1],"key":"s16","type":"jt_doc"}'),
    ('{"type":"jt_doc","key":"s17","value":1,"headers":{"operation":"upsert","txid":5}}'),
    ('{"type":"jt_doc","key":"","value":1,"headers":{"operation":"upsert"}}'),
    ('{"type":"jt_doc","key":"s19","value":1,"headers":{}}'),
    ('{"type":"jt_doc","key":"s20","value":1}'),
    ('{"type":"jt_doc","key":"s21","value":1,"headers":[{"operation":"upsert"}]}'),
    ('{"type":"jt_doc","key":"s22","value":1,"headers":{"operation":"upsert","more":{"operation":"delete","control":"reset"}}}');
-- past 127 members (where the parser notes none): searched for
INSERT INTO jt_shapes (v)
SELECT '{"type":"jt_doc","key":"s' || c.n || '","value":1,' || string_agg(format('"m%s":%s', i, i), ',') ||
       CASE c.n WHEN 0 THEN ',"headers":{"operation":"upsert"}}' ELSE '}' END
  FROM (VALUES (0)) c(n), generate_series(1, 130) i GROUP BY c.n;
INSERT INTO jt_shapes (v)
SELECT '{"type":"jt_doc","key":"s' || c.n || '","value":1,"headers":{"operation":"upsert",' ||
       string_agg(format('"h%s":"%s"', i, i), ',') || '}}'
  FROM (VALUES (1)) c(n), generate_series(1, 130) i GROUP BY c.n;
SELECT s.n, pg_temp.err(format('SELECT * FROM state.apply_text(%L, %L)', '[' || s.v || ']', 'jt')) AS apply_text
  FROM jt_shapes s ORDER BY s.n;
SELECT s.n, s.v
  FROM jt_shapes s
 WHERE pg_temp.err(format('SELECT * FROM state.apply_text(%L, %L)', '[' || s.v || ']', 'jt'))
       IS DISTINCT FROM pg_temp.err(format('SELECT * FROM state.apply(%L, %L)', '[' || s.v || ']', 'jt'))
    OR pg_temp.err(format('SELECT * FROM state.apply_text(%L, %L)', s.v, 'jt'))
       IS DISTINCT FROM regexp_replace(pg_temp.err(format('SELECT * FROM state.apply(%L, %L)', s.v, 'jt')),
                                       '^(\w+: event 0)', '\1 (line 1)');

-- Events apply_text takes from its parser's notes store, log and confirm
-- what apply stores, logs and confirms for the same events: values of
-- every kind, old_value, deletes, txids, escapes, duplicate keys, and keys
-- in jsonb's own order (which the parser does not sort again).
SELECT state.create_collection('jt_sa', 'jt_s', stream => 'jt_sa', mode => 'lenient');
SELECT state.create_collection('jt_sb', 'jt_s', stream => 'jt_sb', mode => 'lenient');
CREATE TEMP TABLE jt_ok (n serial, v text);
INSERT INTO jt_ok (v) VALUES
    ('{"key":"o1","type":"jt_s","value":"str","headers":{"operation":"insert"}}'),
    ('{"key":"o2","type":"jt_s","value":1.5,"headers":{"operation":"upsert"}}'),
    ('{"key":"o3","type":"jt_s","value":true,"headers":{"operation":"upsert"}}'),
    ('{"key":"o4","type":"jt_s","value":null,"headers":{"operation":"upsert"}}'),
    ('{"key":"o5","type":"jt_s","value":[1,"a",{"b":2}],"headers":{"operation":"upsert"}}'),
    ('{"type":"jt_s","key":"o6","value":{"z":1,"a":{"headers":{"operation":"delete"}}},"headers":{"txid":"T1-@","operation":"upsert"}}'),
    ('{"key":"o1","type":"jt_s","old_value":"str","value":"str2","headers":{"operation":"update"}}'),
    ('{"key":"o2","type":"jt_s","headers":{"operation":"delete"}}'),
    ('{"key":"o3","type":"jt_s","value":false,"old_value":true,"headers":{"operation":"upsert","txid":"T2-@"}}'),
    ('{"headers":{"operation":"upsert","txid":"T3-@"},"value":{"n":-12345678901234567},"type":"jt_s","key":"o\"7\\"}'),
    ('{"key":"o8","key":"o9","type":"jt_s","value":1,"headers":{"operation":"upsert"}}'),
    ('{"key":"o10","type":"jt_s","type":"jt_s","value":1,"headers":{"operation":"upsert"}}'),
    ('{"key":"o11","type":"jt_s","value":{"a0":0,"a1":1,"a2":{"b":"\t"},"aa":[]},"headers":{"txid":"T4-@","operation":"upsert"}}'),
    ('{"key":"o12","type":"jt_s","value":' ||
     (SELECT '{' || string_agg(format('"a%s": %s', lpad(i::text, 3, '0'), i), ', ' ORDER BY i) || '}'
        FROM generate_series(1, 100) i) || ',"headers":{"operation":"upsert"}}');
SELECT applied FROM state.apply_text((SELECT string_agg(replace(v, '@', 'a'), E'\n' ORDER BY n) FROM jt_ok), 'jt_sa');
SELECT applied FROM state.apply((SELECT jsonb_agg(replace(v, '@', 'b')::jsonb ORDER BY n) FROM jt_ok), 'jt_sb');
SELECT a.key, a.value AS via_apply_text, b.value AS via_apply
  FROM jt_sa a FULL JOIN jt_sb b USING (key)
 WHERE a.value::text IS DISTINCT FROM b.value::text OR a.version IS DISTINCT FROM b.version;
SELECT key, left(value::text, 60) AS value FROM jt_sa ORDER BY key;
SELECT a.seq, a.event AS via_apply_text, b.event AS via_apply
  FROM (SELECT * FROM state.log_events WHERE stream = 'jt_sa') a
  FULL JOIN (SELECT * FROM state.log_events WHERE stream = 'jt_sb') b USING (seq)
 WHERE replace(a.event::text, '-a"', '-b"') IS DISTINCT FROM b.event::text;
SELECT t, state.txid_status(t || '-a') <> 'unknown' AS via_apply_text,
       state.txid_status(t || '-b') <> 'unknown' AS via_apply
  FROM unnest(ARRAY['T1', 'T2', 'T3', 'T4', 'T5']) t;
SELECT state.drop_collection('jt_sa', 'jt_sa', drop_table => true);
SELECT state.drop_collection('jt_sb', 'jt_sb', drop_table => true);

SELECT state.drop_collection('jt_docs', 'jt', drop_table => true);
SELECT state.drop_collection('jt_typed_a', 'jt_a', drop_table => true);
SELECT state.drop_collection('jt_typed_b', 'jt_b', drop_table => true);
