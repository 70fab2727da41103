-- kv: entity versions, compare-and-set puts, increments and default TTLs.
SET search_path = public;
SELECT state.create_collection('kv_docs', stream => 'kv', mode => 'lenient');
SELECT state.create_collection('kv_typed', stream => 'kv', mode => 'lenient',
       schema => '{"type": "object", "properties": {"id": {"type": "string"},
                   "n": {"type": "integer"}, "name": {"type": "string"}}}');
CREATE TABLE kv_adopted (id text PRIMARY KEY, n integer, ver bigint NOT NULL DEFAULT 0);
SELECT state.create_collection('kv_adopted', table_name => 'kv_adopted', stream => 'kv',
                               mode => 'lenient', version_column => 'ver');
CREATE TABLE kv_plain (id text PRIMARY KEY, n integer);
SELECT state.create_collection('kv_plain', table_name => 'kv_plain', stream => 'kv', mode => 'lenient');
SELECT name, kind, version_column, default_ttl FROM state.collections WHERE stream = 'kv' ORDER BY name;

-- versions: 1 when inserted, +1 on every change, back to 1 after a delete
SELECT applied FROM state.apply(jsonb_build_array(
    t.ev('kv_docs', 'a', 'insert', '{"x": 1}'),
    t.ev('kv_docs', 'a', 'update', '{"x": 2}'),
    t.ev('kv_typed', 't', 'upsert', '{"n": 1}'),
    t.ev('kv_adopted', 'p', 'upsert', '{"n": 1}'),
    t.ev('kv_adopted', 'p', 'upsert', '{"n": 2}'),
    t.ev('kv_adopted', 'p', 'upsert', '{"n": 3}'),
    t.ev('kv_plain', 'q', 'upsert', '{"n": 1}')), 'kv');
SELECT * FROM state.get_versioned('kv_docs', 'a', 'kv');
SELECT * FROM state.get_versioned('kv_typed', 't', 'kv');
SELECT * FROM state.get_versioned('kv_adopted', 'p', 'kv');
SELECT count(*) AS absent_rows FROM state.get_versioned('kv_docs', 'nope', 'kv');
SELECT count(*) AS null_key_rows FROM state.get_versioned('kv_docs', NULL, 'kv');
-- the version column is no member of the value, in reads and in the log
SELECT state.get('kv_adopted', 'p', 'kv') AS adopted_value, state.get('kv_typed', 't', 'kv') AS typed_value;
SELECT s FROM state.snapshot('kv') s WHERE s->>'type' = 'kv_adopted';
SELECT id, n, ver FROM kv_adopted;
SELECT t.expect_error_verbose($$SELECT * FROM state.get_versioned('kv_plain', 'q', 'kv')$$);
SELECT applied FROM state.apply(t.ev('kv_docs', 'a', 'delete'), 'kv');
SELECT applied FROM state.apply(t.ev('kv_docs', 'a', 'insert', '{"x": 3}'), 'kv');
SELECT * FROM state.get_versioned('kv_docs', 'a', 'kv');
-- a value member cannot set the version
SELECT t.expect_error($$SELECT state.apply(t.ev('kv_adopted', 'p', 'upsert', '{"n": 4, "ver": 100}'), 'kv')$$);
SELECT * FROM state.get_versioned('kv_adopted', 'p', 'kv');
-- bad version columns
CREATE TABLE kv_badver (id text PRIMARY KEY, ver integer);
SELECT t.expect_error($$SELECT state.create_collection('kv_badver', table_name => 'kv_badver', stream => 'kv', version_column => 'ver')$$);
SELECT t.expect_error($$SELECT state.create_collection('kv_badver', table_name => 'kv_badver', stream => 'kv', version_column => 'id')$$);
SELECT t.expect_error($$SELECT state.create_collection('kv_doc2', stream => 'kv', version_column => 'v')$$);
SELECT t.expect_error($$SELECT state.create_collection('kv_gen2', stream => 'kv', schema => '{"properties": {"_version": {"type": "string"}}}', version_column => '_version')$$);
SELECT state.create_collection('kv_gen3', stream => 'kv', schema => '{"properties": {"_version": {"type": "string"}}}');
SELECT version_column FROM state.collections WHERE name = 'kv_gen3';
SELECT state.drop_collection('kv_gen3', 'kv', drop_table => true);
-- the table lost its version column: a clear error
ALTER TABLE kv_adopted RENAME COLUMN ver TO ver2;
SELECT t.expect_error($$SELECT state.apply(t.ev('kv_adopted', 'p', 'upsert', '{"n": 5}'), 'kv')$$);
ALTER TABLE kv_adopted RENAME COLUMN ver2 TO ver;

-- put with expected_version: a compare-and-set
SELECT state.put('kv_docs', 'c', '{"v": 1}', stream => 'kv', expected_version => 0) IS NOT NULL AS created;
SELECT t.expect_error_verbose($$SELECT state.put('kv_docs', 'c', '{"v": 2}', stream => 'kv', expected_version => 0)$$);
SELECT state.put('kv_docs', 'c', '{"v": 2}', stream => 'kv', expected_version => 1) IS NOT NULL AS updated;
SELECT t.expect_error_verbose($$SELECT state.put('kv_docs', 'c', '{"v": 3}', stream => 'kv', expected_version => 1)$$);
SELECT t.expect_error_verbose($$SELECT state.put('kv_docs', 'nope', '{"v": 3}', stream => 'kv', expected_version => 4)$$);
SELECT t.expect_error($$SELECT state.put('kv_docs', 'c', '{"v": 3}', stream => 'kv', expected_version => -1)$$);
SELECT t.expect_error($$SELECT state.put('kv_plain', 'q', '{"n": 3}', stream => 'kv', expected_version => 1)$$);
SELECT * FROM state.get_versioned('kv_docs', 'c', 'kv');
-- a failed compare-and-set logged nothing
SELECT count(*) AS c_events FROM state.changes('kv') WHERE event->>'key' = 'c';

-- increment: one logged upsert per call, from 0 when absent
SELECT state.increment('kv_docs', 'ctr', 'hits', stream => 'kv') AS first,
       state.increment('kv_docs', 'ctr', 'hits', 2.5, 'kv') AS second,
       state.increment('kv_docs', 'ctr', 'other', -1, 'kv') AS other;
SELECT * FROM state.get_versioned('kv_docs', 'ctr', 'kv');
SELECT state.increment('kv_typed', 't', 'n', 41, 'kv') AS typed;
SELECT state.get('kv_typed', 't', 'kv');
SELECT state.put('kv_docs', 'str', '{"hits": "many"}', stream => 'kv') IS NOT NULL AS put,
       state.put('kv_docs', 'arr', '[1, 2]', stream => 'kv') IS NOT NULL AS put2;
SELECT t.expect_error($$SELECT state.increment('kv_docs', 'str', 'hits', stream => 'kv')$$);
SELECT t.expect_error($$SELECT state.increment('kv_docs', 'arr', 'hits', stream => 'kv')$$);
SELECT t.expect_error($$SELECT state.increment('kv_docs', 'ctr', NULL, stream => 'kv')$$);
SELECT t.expect_error_verbose($$SELECT state.increment('kv_typed', 't', 'n', 0.5, 'kv')$$);
SELECT t.expect_error($$SELECT state.increment('kv_docs', 'ctr', 'hits', stream => 'kv_nope')$$);
SELECT state.get('kv_typed', 't', 'kv') AS typed_unchanged;
SELECT event->'value' AS logged FROM state.changes('kv') WHERE event->>'key' = 'ctr' ORDER BY "offset";

-- a default TTL: every write sets it, a delete ends it, put's ttl overrides it
SELECT state.create_collection('kv_typing', stream => 'kv', mode => 'lenient', default_ttl => '1 hour');
SELECT t.expect_error($$SELECT state.create_collection('kv_bad_ttl', stream => 'kv', default_ttl => '-1 s')$$);
SELECT applied FROM state.apply(jsonb_build_array(
    t.ev('kv_typing', 'u1', 'upsert', '"a"'),
    t.ev('kv_typing', 'u2', 'upsert', '"b"'),
    t.ev('kv_typing', 'u2', 'delete'),
    t.ev('kv_typing', 'u3', 'delete'),
    t.ev('kv_typing', 'u1', 'upsert', '"c"')), 'kv');
SELECT key, expires_at BETWEEN now() + interval '59 minutes' AND clock_timestamp() + interval '1 hour' AS in_an_hour
  FROM state._expiry WHERE type = 'kv_typing' ORDER BY key;
SELECT state.put('kv_typing', 'u4', '"d"', interval '1 ms', 'kv') IS NOT NULL AS put_short;
SELECT state.put('kv_typing', 'u5', '"e"', stream => 'kv') IS NOT NULL AS put_default;
SELECT pg_sleep(0.02);
SELECT key, value FROM state.get_type('kv_typing', 'kv') ORDER BY key;
SELECT state._expire() AS expired;
SELECT event->>'key' AS key, event->'headers'->>'operation' AS op
  FROM state.changes('kv') ORDER BY "offset" DESC LIMIT 1;
-- altering it: 0 turns it off (TTLs already set stay), NULL keeps it
SELECT state.alter_collection('kv_typing', 'kv', default_ttl => '0');
SELECT default_ttl FROM state.collections WHERE name = 'kv_typing';
SELECT state.put('kv_typing', 'u6', '"f"', stream => 'kv') IS NOT NULL AS put_no_ttl;
SELECT key FROM state._expiry WHERE type = 'kv_typing' ORDER BY key;
SELECT state.alter_collection('kv_typing', 'kv', default_ttl => '2 hours');
SELECT state.alter_collection('kv_typing', 'kv', mode => 'lenient');
SELECT default_ttl, has_ttl FROM state._collections WHERE name = 'kv_typing';
SELECT t.expect_error($$SELECT state.alter_collection('kv_typing', 'kv', default_ttl => '-1 h')$$);

-- a session finds a stream's row where it last saw it; when the row moved
-- (rewritten by a batch that sets source_offset, by an UPDATE, by VACUUM
-- FULL, which may put another stream's row there), the current row counts
SELECT state.create_collection('kv_tid_a', stream => 'kv_tid_a', mode => 'lenient');
SELECT state.create_collection('kv_tid_b', stream => 'kv_tid_b', mode => 'lenient');
SELECT state.put('kv_tid_a', 'x', '1', stream => 'kv_tid_a') AS a1,
       state.put('kv_tid_b', 'x', '1', stream => 'kv_tid_b') AS b1;
SELECT applied FROM state.apply(jsonb_build_array(t.ev('kv_tid_a', 'y', 'upsert', '2')), 'kv_tid_a', 'src-1');
SELECT state.put('kv_tid_a', 'x', '3', stream => 'kv_tid_a') AS a3;
UPDATE state._streams SET updated_at = updated_at WHERE name IN ('kv_tid_a', 'kv_tid_b');
SELECT state.put('kv_tid_b', 'x', '2', stream => 'kv_tid_b') AS b2;
VACUUM FULL state._streams;
SELECT state.put('kv_tid_b', 'x', '3', stream => 'kv_tid_b') AS b3,
       state.put('kv_tid_a', 'x', '4', stream => 'kv_tid_a') AS a4;
SELECT stream, tail, source_offset FROM state.streams WHERE stream LIKE 'kv_tid_%' ORDER BY stream;
SELECT "offset", event->>'type' AS type, event->>'key' AS key, event->'value' AS value
  FROM state.changes('kv_tid_a') ORDER BY "offset";
SELECT "offset", event->>'type' AS type, event->>'key' AS key, event->'value' AS value
  FROM state.changes('kv_tid_b') ORDER BY "offset";
-- ... or where the table no longer reaches (VACUUM FULL shrank it)
INSERT INTO state._streams (name) SELECT 'kv_tid_pad' || i FROM generate_series(1, 300) i;
SELECT state.create_collection('kv_tid_c', stream => 'kv_tid_c', mode => 'lenient');
SELECT state.put('kv_tid_c', 'x', '1', stream => 'kv_tid_c') AS c1;
SELECT (ctid::text::point)[0] > 1 AS row_past_block_1 FROM state._streams WHERE name = 'kv_tid_c';
DELETE FROM state._streams WHERE name LIKE 'kv_tid_pad%';
VACUUM FULL state._streams;
SELECT pg_relation_size('state._streams') / current_setting('block_size')::int AS blocks;
SELECT state.put('kv_tid_c', 'x', '2', stream => 'kv_tid_c') AS c2;
