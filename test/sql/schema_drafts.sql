-- schema_drafts: "$schema" selects one of draft-04, draft-06, draft-07,
-- 2019-09 and 2020-12 (2020-12 when absent), each read with its own rules;
-- anything else is refused with 22023
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- an unknown or malformed "$schema" is an error naming the supported drafts
SELECT t.expect_error_verbose($$SELECT state.json_schema_validate('{"$schema": "https://example.com/x", "type": "string"}', '"a"')$$);
SELECT t.expect_error_verbose($$SELECT state.json_schema_validate('{"$schema": "not a uri"}', '1')$$);
SELECT t.expect_error_verbose($$SELECT state.json_schema_validate('{"$schema": 5}', '1')$$);
SELECT t.expect_error_verbose($$SELECT state.json_schema_validate('{"$schema": "http://json-schema.org/draft-03/schema#"}', '1')$$);
-- in a subschema too, and from json_schema_errors and create_collection
SELECT t.expect_error($$SELECT state.json_schema_validate('{"properties": {"a": {"$schema": "http://json-schema.org/schema#"}}}', '{}')$$);
SELECT t.expect_error($$SELECT * FROM state.json_schema_errors('{"$schema": null}', '1')$$);
SELECT t.expect_error($$SELECT state.create_collection('sd_bad', stream => 'sd', schema => '{"$schema": "https://json-schema.org/draft/2021-01/schema"}')$$);
SELECT count(*) AS bad_left FROM state.collections WHERE name = 'sd_bad';

-- every supported URI, with or without the empty fragment, http or https
SELECT u AS schema_uri, state.json_schema_validate(jsonb_build_object('$schema', u, 'type', 'integer'), '1') AS ok
  FROM unnest(ARRAY['http://json-schema.org/draft-04/schema#', 'http://json-schema.org/draft-06/schema',
                    'https://json-schema.org/draft-07/schema#', 'https://json-schema.org/draft/2019-09/schema',
                    'https://json-schema.org/draft/2020-12/schema#']) AS u;

-- a registered meta-schema that declares "$vocabulary" may be named (here
-- without the validation vocabulary, so "minimum" is not checked); one
-- without "$vocabulary" may not
SELECT state.json_schema_register('https://example.com/meta/novalidation', '{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://example.com/meta/novalidation",
  "$vocabulary": {"https://json-schema.org/draft/2020-12/vocab/core": true,
                  "https://json-schema.org/draft/2020-12/vocab/applicator": true}}');
SELECT state.json_schema_validate('{"$schema": "https://example.com/meta/novalidation", "minimum": 5}', '1') AS no_validation,
       state.json_schema_validate('{"$schema": "https://example.com/meta/novalidation", "properties": {"a": false}}', '{"a": 1}') AS applicators;
SELECT state.json_schema_register('https://example.com/meta/plain', '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}');
SELECT t.expect_error($$SELECT state.json_schema_validate('{"$schema": "https://example.com/meta/plain"}', '1')$$);

-- draft-04: "id", boolean exclusiveMaximum, 1.0 is not an integer
SELECT state.json_schema_validate('{"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 3, "exclusiveMaximum": true}', '3') AS d4_exclusive,
       state.json_schema_validate('{"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 3, "exclusiveMaximum": false}', '3') AS d4_inclusive,
       state.json_schema_validate('{"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"}', '1.0') AS d4_one_point_zero,
       state.json_schema_validate('{"type": "integer"}', '1.0') AS d2020_one_point_zero,
       state.json_schema_validate('{"$schema": "http://json-schema.org/draft-04/schema#",
           "definitions": {"a": {"id": "http://example.com/a.json", "type": "string"}},
           "$ref": "http://example.com/a.json"}', '1') AS d4_id;
SELECT t.expect_error_verbose($$SELECT state.json_schema_validate('{"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 3, "exclusiveMaximum": 2}', '1')$$);
-- draft-06: numeric exclusiveMaximum, no if/then/else
SELECT state.json_schema_validate('{"$schema": "http://json-schema.org/draft-06/schema#", "exclusiveMaximum": 3}', '3') AS d6_exclusive,
       state.json_schema_validate('{"$schema": "http://json-schema.org/draft-06/schema#", "if": true, "then": false}', '1') AS d6_no_if,
       state.json_schema_validate('{"$schema": "http://json-schema.org/draft-07/schema#", "if": true, "then": false}', '1') AS d7_if;
-- up to draft-07 "$ref" hides its siblings; from 2019-09 on it does not
SELECT state.json_schema_validate('{"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"s": {"type": "string"}}, "$ref": "#/definitions/s", "maxLength": 1}', '"abc"') AS d7_ref_sibling,
       state.json_schema_validate('{"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s", "maxLength": 1}', '"abc"') AS d2020_ref_sibling;
-- "dependencies" up to draft-07; "dependentRequired" from 2019-09 on
SELECT state.json_schema_validate('{"$schema": "http://json-schema.org/draft-07/schema#", "dependencies": {"a": ["b"]}}', '{"a": 1}') AS d7_dependencies,
       state.json_schema_validate('{"$schema": "http://json-schema.org/draft-07/schema#", "dependentRequired": {"a": ["b"]}}', '{"a": 1}') AS d7_dependent_required,
       state.json_schema_validate('{"$schema": "https://json-schema.org/draft/2019-09/schema", "dependentRequired": {"a": ["b"]}}', '{"a": 1}') AS d2019_dependent_required;
-- 2019-09: array "items" with "additionalItems", "$recursiveRef"; 2020-12: "prefixItems"
SELECT state.json_schema_validate('{"$schema": "https://json-schema.org/draft/2019-09/schema", "items": [{"type": "integer"}], "additionalItems": false}', '[1, 2]') AS d2019_tuple,
       state.json_schema_validate('{"$schema": "https://json-schema.org/draft/2019-09/schema", "prefixItems": [{"type": "string"}]}', '[1]') AS d2019_no_prefix_items,
       state.json_schema_validate('{"prefixItems": [{"type": "integer"}], "items": false}', '[1, 2]') AS d2020_tuple;
-- (the outer resource's anchor lets the recursion reach its "integer"; without
-- it "$recursiveRef" is a plain "$ref" to "node")
SELECT state.json_schema_validate(s, '{"a": {"b": 1}}') AS d2019_recursive,
       state.json_schema_validate(s - '$recursiveAnchor', '{"a": {"b": 1}}') AS d2019_not_recursive
  FROM (SELECT '{"$schema": "https://json-schema.org/draft/2019-09/schema",
    "$id": "https://example.com/tree", "$recursiveAnchor": true,
    "$defs": {"node": {"$id": "node", "$recursiveAnchor": true,
                       "type": "object", "additionalProperties": {"$recursiveRef": "#"}}},
    "anyOf": [{"type": "integer"}, {"$ref": "node"}]}'::jsonb AS s) AS x;
-- items that "contains" matched count as evaluated from 2020-12 on only
SELECT state.json_schema_validate('{"$schema": "https://json-schema.org/draft/2019-09/schema", "contains": {"type": "string"}, "unevaluatedItems": false}', '["a"]') AS d2019_contains_unevaluated,
       state.json_schema_validate('{"contains": {"type": "string"}, "unevaluatedItems": false}', '["a"]') AS d2020_contains_unevaluated;
-- a "$ref" into another draft's document is read in that draft
SELECT state.json_schema_register('https://example.com/d7-tuple', '{"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "integer"}]}');
SELECT state.json_schema_validate('{"$ref": "https://example.com/d7-tuple"}', '[1]') AS cross_draft_ok,
       state.json_schema_validate('{"$ref": "https://example.com/d7-tuple"}', '["x"]') AS cross_draft_bad;
-- the meta-schemas are bundled: a schema can be checked against each
SELECT u AS meta, state.json_schema_validate(jsonb_build_object('$ref', u), '{"type": "string"}') AS good,
       state.json_schema_validate(jsonb_build_object('$ref', u), '{"type": 5}') AS bad
  FROM unnest(ARRAY['http://json-schema.org/draft-04/schema#', 'http://json-schema.org/draft-06/schema#',
                    'http://json-schema.org/draft-07/schema#', 'https://json-schema.org/draft/2019-09/schema',
                    'https://json-schema.org/draft/2020-12/schema']) AS u;
