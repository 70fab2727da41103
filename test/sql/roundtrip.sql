-- roundtrip: a generated table gives back exactly what was applied.
-- Typed columns hold what they can; the extra column keeps members the
-- schema allows beyond its properties and the exact JSON of members a
-- column would re-render (timestamps, uuids, 1.0 in an integer column,
-- explicit nulls).
SET search_path = public;

SELECT state.create_collection('rt_users', stream => 'rt', schema => $${
    "type": "object",
    "properties": {
        "id":    {"type": "string"},
        "name":  {"type": "string"},
        "age":   {"type": ["integer", "null"]},
        "born":  {"type": "string", "format": "date-time"},
        "uid":   {"type": "string", "format": "uuid"},
        "nick":  {"type": ["string", "null"]},
        "tags":  {"type": ["array", "null"]},
        "score": {"type": "number"},
        "admin": {"type": "boolean"}
    },
    "required": ["id", "name", "nick"]
}$$);
-- one column per property, "required" is NOT NULL unless null is allowed,
-- and the extra column
SELECT attname, format_type(atttypid, atttypmod), attnotnull
  FROM pg_attribute WHERE attrelid = 'rt_users'::regclass AND attnum > 0 ORDER BY attnum;
SELECT name, kind, extra_column FROM state.collections WHERE stream = 'rt';

CREATE TABLE rt_values (k text PRIMARY KEY, v jsonb NOT NULL);
INSERT INTO rt_values VALUES
    ('plain',    '{"id": "plain", "name": "Ann", "age": 41, "nick": "a", "admin": true}'),
    ('one-dot-0', '{"id": "one-dot-0", "name": "B", "age": 1.0, "nick": null}'),
    ('big',      '{"id": "big", "name": "C", "age": -9007199254740993, "nick": "c", "score": 1.50}'),
    ('zulu',     '{"id": "zulu", "name": "D", "born": "2024-01-01T00:00:00Z", "nick": "d"}'),
    ('offset',   '{"id": "offset", "name": "E", "born": "2024-01-01T12:00:00.000+01:00", "nick": "e"}'),
    ('canon',    '{"id": "canon", "name": "F", "born": "2024-01-01T00:00:00+00:00", "nick": "f"}'),
    ('upper',    '{"id": "upper", "name": "G", "uid": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "nick": "g"}'),
    ('extras',   '{"id": "extras", "name": "H", "nick": "h", "color": "red", "meta": {"a": [1, {"b": null}]}, "_extra": "same name as the column"}'),
    ('no-id',    '{"name": "I", "nick": null, "tags": [3, "x", null]}'),
    ('nulls',    '{"id": "nulls", "name": "J", "nick": null, "age": null, "tags": null, "more": null}');
SELECT * FROM state.apply((SELECT jsonb_agg(t.ev('rt_users', k, 'insert', v) ORDER BY k) FROM rt_values), 'rt');

-- text for text, with the key member filled in when the value left it out
SELECT k, state.get('rt_users', k, 'rt')::text = (v || jsonb_build_object('id', k))::text AS same_text
  FROM rt_values ORDER BY k;
SELECT state.get('rt_users', 'one-dot-0', 'rt'), state.get('rt_users', 'zulu', 'rt'),
       state.get('rt_users', 'upper', 'rt'), state.get('rt_users', 'extras', 'rt');
-- every read path agrees: get_type, get_many and snapshot
SELECT bool_and(g.value::text = (v.v || jsonb_build_object('id', v.k))::text) AND count(*) = 10 AS get_type_same
  FROM state.get_type('rt_users', 'rt') g JOIN rt_values v ON v.k = g.key;
SELECT state.get_many('rt_users', ARRAY['zulu', 'extras'], 'rt')
     = jsonb_build_object('zulu', (SELECT v FROM rt_values WHERE k = 'zulu'),
                          'extras', (SELECT v FROM rt_values WHERE k = 'extras')) AS get_many_same;
SELECT count(*) FILTER (WHERE s->'value' = (v.v || jsonb_build_object('id', v.k))) AS snapshot_same
  FROM state.snapshot('rt') s JOIN rt_values v ON v.k = s->>'key';
-- the typed columns hold typed values for SQL
SELECT id, age, born, uid, nick IS NULL AS nick_null FROM rt_users
 WHERE id IN ('one-dot-0', 'offset', 'upper') ORDER BY id;
-- the extra column: the exact JSON with what the column reads back as, and
-- the members without a column; NULL when there is nothing to keep
SELECT id, _extra FROM rt_users ORDER BY id;

-- an update replaces the value: extras and exact text go with it
SELECT * FROM state.apply(t.ev('rt_users', 'extras', 'update', '{"name": "H2", "nick": "h"}'), 'rt');
SELECT state.get('rt_users', 'extras', 'rt'), _extra IS NULL AS extra_cleared
  FROM rt_users WHERE id = 'extras';
SELECT * FROM state.apply(t.ev('rt_users', 'plain', 'upsert', '{"name": "Ann", "nick": "a", "born": "2030-06-01T08:00:00.5-02:00", "x": 1}'), 'rt');
SELECT state.get('rt_users', 'plain', 'rt');

-- a column changed by SQL behind the collection's back wins over the kept text
-- (the same instant again keeps the text; another instant does not)
UPDATE rt_users SET born = '2024-01-01T11:00:00Z' WHERE id = 'offset';
SELECT state.get('rt_users', 'offset', 'rt')->'born' AS offset_born;
UPDATE rt_users SET born = '2024-01-01T12:00:00Z' WHERE id = 'offset';
SELECT state.get('rt_users', 'offset', 'rt')->'born' AS offset_born;
UPDATE rt_users SET born = '2025-05-05T00:00:00Z' WHERE id = 'zulu';
SELECT state.get('rt_users', 'zulu', 'rt')->'born' AS zulu_born;
UPDATE rt_users SET nick = 'set by sql' WHERE id = 'nulls';
SELECT state.get('rt_users', 'nulls', 'rt')->'nick' AS nulls_nick;
UPDATE rt_users SET age = 2 WHERE id = 'one-dot-0';
SELECT state.get('rt_users', 'one-dot-0', 'rt')->'age' AS age;

-- old_value compare-and-set sees the extra members too
SELECT state.alter_collection('rt_users', stream => 'rt', check_old_value => true);
SELECT * FROM state.apply(t.ev('rt_users', 'no-id', 'update', '{"name": "I2", "nick": null}',
                               '{"tags": [3, "x", null], "nick": null}'), 'rt');
SELECT * FROM state.apply(t.ev('rt_users', 'nulls', 'update', '{"name": "J2", "nick": null, "more": 1}',
                               '{"more": null, "name": "J"}'), 'rt');
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('rt_users', 'nulls', 'update', '{"name": "J3", "nick": null}',
                               '{"more": 2}'), 'rt')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('rt_users', 'nulls', 'delete', NULL,
                               '{"gone": "never stored"}'), 'rt')$$);
SELECT state.get('rt_users', 'nulls', 'rt');

-- a property named like the extra column moves the extra column aside
SELECT state.create_collection('rt_clash', stream => 'rt', schema =>
    '{"type": "object", "properties": {"_extra": {"type": "string"}, "_extra_1": {"type": "integer"}}}');
SELECT extra_column FROM state.collections WHERE name = 'rt_clash';
SELECT * FROM state.apply(t.ev('rt_clash', 'c1', 'insert', '{"_extra": "a", "_extra_1": 1.0, "_extra_2": "b"}'), 'rt');
SELECT state.get('rt_clash', 'c1', 'rt');
SELECT t.expect_error($$SELECT state.create_collection('rt_clash2', stream => 'rt', extra_column => 'p',
    schema => '{"type": "object", "properties": {"p": {"type": "string"}}}')$$);

-- adopted tables may name a jsonb column as their extra column
CREATE TABLE rt_adopted (id int PRIMARY KEY, at timestamptz, rest jsonb, note text);
SELECT state.create_collection('rt_adopted', stream => 'rt', table_name => 'rt_adopted',
                               extra_column => 'rest');
SELECT * FROM state.apply(t.ev('rt_adopted', '7', 'insert', '{"at": "2024-02-29T23:59:59Z", "deep": {"x": [1]}, "rest": "a member called rest"}'), 'rt');
SELECT state.get('rt_adopted', '7', 'rt'), rest FROM rt_adopted;
SELECT t.expect_error($$SELECT state.create_collection('rt_adopted2', stream => 'rt', table_name => 'rt_adopted', type => 'x', extra_column => 'note')$$);
SELECT t.expect_error($$SELECT state.create_collection('rt_adopted2', stream => 'rt', table_name => 'rt_adopted', type => 'x', extra_column => 'nope')$$);
SELECT t.expect_error($$SELECT state.create_collection('rt_adopted2', stream => 'rt', table_name => 'rt_adopted', type => 'x', extra_column => 'id')$$);
SELECT t.expect_error($$SELECT state.create_collection('rt_doc', stream => 'rt', extra_column => 'x')$$);
-- dropping the extra column behind the collection's back is a clear error
ALTER TABLE rt_adopted DROP COLUMN rest;
SELECT t.expect_error_verbose($$SELECT state.get('rt_adopted', '7', 'rt')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('rt_adopted', '8', 'insert', '{}'), 'rt')$$);
SELECT count(*) AS rows_unchanged FROM rt_adopted;

-- many random values round-trip (the differential check in miniature)
SELECT state.create_collection('rt_rand', stream => 'rt', schema => $${
    "type": "object",
    "properties": {"i": {"type": "integer"}, "n": {"type": "number"},
                   "s": {"type": ["string", "null"]}, "t": {"type": "string", "format": "date-time"},
                   "u": {"type": "string", "format": "uuid"}, "b": {"type": "boolean"},
                   "j": {}}
}$$);
SELECT setseed(0.25);
CREATE TABLE rt_rand_in AS
SELECT 'k' || g AS k, jsonb_strip_nulls(jsonb_build_object(
           'i', CASE WHEN random() < 0.3 THEN (floor(random() * 1e6) - 5e5)::numeric
                     WHEN random() < 0.5 THEN (floor(random() * 100))::numeric(10, 1) END,
           'n', CASE WHEN random() < 0.7 THEN round((random() * 1e4)::numeric, (random() * 6)::int) END,
           's', CASE WHEN random() < 0.7 THEN md5(g::text) || ' ünï ' || g END,
           't', CASE WHEN random() < 0.5 THEN to_char(timestamptz '2020-01-01' + random() * interval '2000 days',
                                                     'YYYY-MM-DD"T"HH24:MI:SS.MS') || (ARRAY['Z', '+05:30', '-00:00', 'z'])[1 + floor(random() * 4)::int] END,
           'u', CASE WHEN random() < 0.5 THEN CASE WHEN random() < 0.5 THEN upper(gen_random_uuid()::text) ELSE gen_random_uuid()::text END END,
           'b', CASE WHEN random() < 0.5 THEN random() < 0.5 END,
           'j', CASE WHEN random() < 0.5 THEN jsonb_build_array(g, 'x', jsonb_build_object('y', g)) END))
       || CASE WHEN random() < 0.3 THEN jsonb_build_object('extra' || (g % 3), g) ELSE '{}'::jsonb END
       || CASE WHEN random() < 0.2 THEN '{"s": null}'::jsonb ELSE '{}'::jsonb END AS v
  FROM generate_series(1, 500) g;
SELECT applied FROM state.apply((SELECT jsonb_agg(t.ev('rt_rand', k, 'insert', v)) FROM rt_rand_in), 'rt');
SELECT count(*) AS compared,
       count(*) FILTER (WHERE g.value::text <> (i.v || jsonb_build_object('id', i.k))::text) AS different
  FROM state.get_type('rt_rand', 'rt') g JOIN rt_rand_in i ON i.k = g.key;
