-- schema: JSON Schema functions, and collections whose values are checked
-- against their schema at apply time
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- the SQL functions
SELECT state.json_schema_validate('{"type": "object", "required": ["a"]}', '{"a": 1}') AS ok,
       state.json_schema_validate('{"type": "object", "required": ["a"]}', '{}') AS missing,
       state.json_schema_validate('{"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "integer"}]}', '[1, "x"]') AS draft7_tuple;
SELECT * FROM state.json_schema_errors(
    '{"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}, "tags": {"type": "array", "items": {"type": "string"}}}, "additionalProperties": false}',
    '{"n": -1, "tags": ["a", 2], "extra": true}') ORDER BY path, keyword;
SELECT state.json_schema_validate('{"format": "email"}', '"not an email"') AS annotation,
       state.json_schema_validate('{"format": "email"}', '"not an email"', assert_formats => true) AS asserted;
SELECT t.expect_error($$SELECT state.json_schema_validate('{"minLength": -1}', '"x"')$$);
SELECT t.expect_error($$SELECT state.json_schema_validate('{"$ref": "#/$defs/missing"}', '1')$$);

-- an invalid schema is refused when the collection is created
SELECT t.expect_error_verbose($$SELECT state.create_collection('sc_bad', stream => 'sc', schema => '{"type": "object", "properties": {"a": {"type": 5}}}')$$);
SELECT count(*) AS bad_left FROM state.collections WHERE name = 'sc_bad';

-- a document collection with a non-object schema
SELECT state.create_collection('sc_tags', 'tag', stream => 'sc', schema => '{"type": "string", "maxLength": 5}');
SELECT applied FROM state.apply(t.ev('tag', 't1', 'insert', '"short"'), 'sc');
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('tag', 't2', 'insert', '"far too long"'), 'sc')$$);
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('tag', 't2', 'insert', '42'), 'sc')$$);

-- a generated typed collection: formats are annotations, patterns and
-- required members are checked; the key fills in a missing "id"
SELECT state.create_collection('sc_users', 'user', stream => 'sc', schema => $${
    "type": "object",
    "required": ["id", "handle"],
    "properties": {
        "id": {"type": "string", "pattern": "^u[0-9]+$"},
        "handle": {"type": "string", "pattern": "^@[a-z]+$"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}
    },
    "additionalProperties": false}$$);
SELECT applied FROM state.apply(t.ev('user', 'u1', 'insert', '{"handle": "@ada", "age": 36}'), 'sc');
SELECT state.get('user', 'u1', 'sc');
SELECT (SELECT count(*) FROM sc_users) AS rows_before, state.tail('sc') AS tail_before;
-- one bad event rejects the whole batch, naming the event, path and keyword
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(jsonb_build_array(
    t.ev('user', 'u2', 'insert', '{"handle": "@bob"}'),
    t.ev('user', 'u3', 'insert', '{"handle": "carol"}')), 'sc')$$);
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('user', 'u4', 'insert', '{"handle": "@dan", "age": -1}'), 'sc')$$);
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('user', 'u4', 'insert', '{"handle": "@dan", "tags": ["a", "a"]}'), 'sc')$$);
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('user', 'x4', 'insert', '{"handle": "@dan"}'), 'sc')$$);
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('user', 'u4', 'insert', '{"handle": "@dan", "nickname": "d"}'), 'sc')$$);
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('user', 'u1', 'update', '{"handle": null}'), 'sc')$$);
SELECT (SELECT count(*) FROM sc_users) AS rows_after, state.tail('sc') AS tail_after;
-- deletes carry no value to check
SELECT applied FROM state.apply(t.ev('user', 'u1', 'delete'), 'sc');

-- an adopted table with an integer key: the filled-in key is a number
CREATE TABLE sc_orders (id bigint PRIMARY KEY, total numeric NOT NULL);
SELECT state.create_collection('sc_orders', 'order', table_name => 'sc_orders', stream => 'sc', schema => $${
    "type": "object", "required": ["id", "total"],
    "properties": {"id": {"type": "integer"}, "total": {"type": "number", "exclusiveMinimum": 0}}}$$);
SELECT applied FROM state.apply(t.ev('order', '7', 'insert', '{"total": 9.5}'), 'sc');
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('order', '8', 'insert', '{"total": 0}'), 'sc')$$);
SELECT state.get('order', '7', 'sc');

SELECT state.drop_collection(c.name, 'sc', drop_table => true)
  FROM state.collections c WHERE c.stream = 'sc' ORDER BY c.name;

-- alter_collection(schema => ...) checks the stored entities first
SELECT state.create_collection('sc_notes', 'note', stream => 'sc2');
SELECT applied FROM state.apply(jsonb_build_array(t.ev('note', 'n1', 'insert', '"hello"'),
                                                  t.ev('note', 'n2', 'insert', '"a longer note"')), 'sc2');
SELECT t.expect_error_verbose($$SELECT state.alter_collection('sc_notes', 'sc2', schema => '{"type": "string", "maxLength": 8}')$$);
SELECT schema FROM state.collections WHERE name = 'sc_notes';
SELECT t.expect_error($$SELECT state.alter_collection('sc_notes', 'sc2', schema => '{"type": 3}')$$);
SELECT state.alter_collection('sc_notes', 'sc2', schema => '{"type": "string", "maxLength": 20}');
SELECT schema FROM state.collections WHERE name = 'sc_notes';
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('note', 'n3', 'insert', '"this note is far too long"'), 'sc2')$$);
SELECT applied FROM state.apply(t.ev('note', 'n3', 'insert', '"short"'), 'sc2');
SELECT state.drop_collection('sc_notes', 'sc2', drop_table => true);
-- an invalid schema is refused even when there is nothing to check
SELECT state.create_collection('sc_empty', 'empty', stream => 'sc2');
SELECT t.expect_error_verbose($$SELECT state.alter_collection('sc_empty', 'sc2', schema => '{"minimum": "x"}')$$);
SELECT state.drop_collection('sc_empty', 'sc2', drop_table => true);

-- assert_formats: a collection can ask for "format" to be an assertion
SELECT state.create_collection('sc_contacts', 'contact', stream => 'sc3', schema => $${
    "type": "object", "properties": {"email": {"type": "string", "format": "email"},
                                     "ref": {"type": "string", "format": "uuid"}}}$$);
-- as an annotation, anything goes
SELECT applied FROM state.apply(t.ev('contact', 'c1', 'insert', '{"email": "not an email"}'), 'sc3');
SELECT t.expect_error_verbose($$SELECT state.alter_collection('sc_contacts', 'sc3', assert_formats => true)$$);
SELECT assert_formats FROM state.collections WHERE name = 'sc_contacts';
SELECT applied FROM state.apply(t.ev('contact', 'c1', 'delete'), 'sc3');
SELECT state.alter_collection('sc_contacts', 'sc3', assert_formats => true);
SELECT assert_formats FROM state.collections WHERE name = 'sc_contacts';
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(jsonb_build_array(
    t.ev('contact', 'c2', 'insert', '{"email": "a@example.com"}'),
    t.ev('contact', 'c3', 'insert', '{"email": "a@example.com", "ref": "12345"}')), 'sc3')$$);
SELECT count(*) AS no_rows FROM sc_contacts;
SELECT applied FROM state.apply(t.ev('contact', 'c2', 'insert', '{"email": "a@example.com", "ref": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}'), 'sc3');
SELECT state.create_collection('sc_strict_fmt', 'fmt', stream => 'sc3', assert_formats => true,
                               schema => '{"type": "string", "format": "date-time"}');
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('fmt', 'f1', 'insert', '"yesterday"'), 'sc3')$$);
SELECT applied FROM state.apply(t.ev('fmt', 'f1', 'insert', '"2024-02-29T10:00:00Z"'), 'sc3');

-- a batch holds its compiled schemas while nested batches (here: a trigger
-- applying to 70 collections with different schemas, more than the
-- backend's cache of 64) compile others; its later events are still checked
SELECT state.create_collection('sc_outer', 'outer', stream => 'sc_outer',
                               schema => '{"type": "object", "properties": {"n": {"type": "integer", "maximum": 10}}}');
SELECT state.create_collection('sc_many_' || g, 'many' || g, stream => 'sc_many',
                               schema => jsonb_build_object('type', 'object', 'properties',
                                   jsonb_build_object('n', jsonb_build_object('type', 'integer', 'maximum', 100 + g))))
  FROM generate_series(1, 70) g \g /dev/null
CREATE FUNCTION sc_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM * FROM state.apply((SELECT jsonb_agg(t.ev('many' || g, NEW.id || '-' || g, 'upsert',
                                                      jsonb_build_object('n', NEW.n)))
                                  FROM generate_series(1, 70) g), 'sc_many');
    RETURN NEW;
END
$$;
CREATE TRIGGER sc_fan_out AFTER INSERT ON sc_outer FOR EACH ROW EXECUTE FUNCTION sc_fan_out();
SELECT applied FROM state.apply(jsonb_build_array(t.ev('outer', 'o1', 'insert', '{"n": 1}'),
                                                  t.ev('outer', 'o2', 'insert', '{"n": 2}')), 'sc_outer');
SELECT count(*) AS fanned_out FROM state.log_events WHERE stream = 'sc_many';
-- AFTER triggers run at the end of the batch: force row-by-row nesting
-- instead with a BEFORE trigger, and a bad event after the nested batches
CREATE OR REPLACE FUNCTION sc_fan_out_before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sc_fan_out_body(NEW.id, NEW.n);
    RETURN NEW;
END
$$;
CREATE FUNCTION sc_fan_out_body(id text, n bigint) RETURNS void LANGUAGE sql AS $$
    SELECT count(*) FROM state.apply((SELECT jsonb_agg(t.ev('many' || g, id || '-' || g, 'upsert',
                                                          jsonb_build_object('n', n)))
                                        FROM generate_series(1, 70) g), 'sc_many')
$$;
DROP TRIGGER sc_fan_out ON sc_outer;
CREATE TRIGGER sc_fan_out BEFORE INSERT ON sc_outer FOR EACH ROW EXECUTE FUNCTION sc_fan_out_before();
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(jsonb_build_array(t.ev('outer', 'o3', 'insert', '{"n": 3}'),
                                                  t.ev('outer', 'o4', 'insert', '{"n": 4}'),
                                                  t.ev('outer', 'o5', 'insert', '{"n": 11}')), 'sc_outer')$$);
SELECT applied FROM state.apply(jsonb_build_array(t.ev('outer', 'o3', 'insert', '{"n": 3}'),
                                                  t.ev('outer', 'o4', 'insert', '{"n": 10}')), 'sc_outer');
SELECT count(*) AS outer_rows FROM sc_outer;
-- a document registered again under the same URI replaces the first (the
-- copy of the jsonb must be by length: it has zero bytes)
SELECT state.json_schema_register('https://example.com/reg.json', '{"type": "integer"}');
SELECT state.json_schema_register('https://example.com/reg.json#', '{"type": "string", "minLength": 2, "maxLength": 40}');
SELECT state.json_schema_validate('{"$ref": "https://example.com/reg.json"}', '"ab"') AS string_ok,
       state.json_schema_validate('{"$ref": "https://example.com/reg.json"}', '1') AS integer_refused;
