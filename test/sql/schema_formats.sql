-- schema_formats: "format" and the content keywords asserted
-- (assert_formats), ECMA-262 patterns on PCRE2, and an invalid pattern
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.fmt(format text, value text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN state.json_schema_validate(jsonb_build_object('format', format),
                                                to_jsonb(value), assert_formats => true)
                THEN 'valid' ELSE 'invalid' END
$$;

-- formats are annotations unless asserted; unknown formats never assert
SELECT state.json_schema_validate('{"format": "ipv4"}', '"1.2.3"') AS annotation,
       state.json_schema_validate('{"format": "ipv4"}', '"1.2.3"', true) AS asserted,
       state.json_schema_validate('{"format": "x-unknown"}', '"1.2.3"', true) AS unknown;

-- edge cases of each format
SELECT f, v, pg_temp.fmt(f, v) FROM (VALUES
    ('date-time', '1998-12-31T23:59:60Z'),         -- leap second at 23:59:60 UTC
    ('date-time', '1998-12-31T22:59:60Z'),         -- not at the end of a UTC day
    ('date-time', '1998-12-31T15:59:60.123-08:00'),
    ('date', '2020-02-29'),
    ('date', '2100-02-29'),
    ('time', '08:30:06z'),
    ('time', '12:00:00'),                          -- no offset
    ('duration', 'P1Y2M3DT4H5M6S'),
    ('duration', 'P2W'),
    ('duration', 'P1Y2D'),                         -- month missing between
    ('duration', 'PT'),
    ('ipv4', '192.168.0.1'),
    ('ipv4', '087.10.0.1'),                        -- leading zero
    ('ipv6', '1::d6:192.168.0.1'),
    ('ipv6', '1::d6::42'),
    ('hostname', 'a--b.example.com'),
    ('hostname', 'host_name'),
    ('hostname', 'xn--4dbc5h'),                    -- Hebrew GERESH after Hebrew
    ('hostname', 'xn--l-fda'),                     -- MIDDLE DOT without l before it
    ('idn-hostname', '실례.테스트'),
    ('idn-hostname', 'a。b'),                       -- ideographic full stop
    ('idn-hostname', 'l·l'),
    ('idn-hostname', 'a·l'),                       -- CONTEXTO
    ('idn-hostname', '0a.א'),                      -- Bidi rule across labels
    ('email', '"joe..bloggs"@example.com'),
    ('email', 'joe.bloggs@[IPv6:::1]'),
    ('email', 'te..st@example.com'),
    ('idn-email', '실례@실례.테스트'),
    ('uri', 'ldap://[2001:db8::7]/c=GB?objectClass?one'),
    ('uri', 'http://example.com:abc/path'),
    ('uri', '/abc'),
    ('uri-reference', '/abc'),
    ('iri', 'http://ƒøø.ßår/?∂éœ=πîx#πîüx'),
    ('iri-reference', '#ƒräg\mênt'),
    ('uri-template', 'http://example.com/dictionary/{term:1}/{term}'),
    ('uri-template', '{v:10000}'),
    ('json-pointer', '/foo/bar~0/baz~1/%a'),
    ('json-pointer', '/~2'),
    ('relative-json-pointer', '0#'),
    ('relative-json-pointer', '01/a'),
    ('regex', '^\p{Letter}+$'),
    ('regex', '\a'),                               -- not an ECMA-262 escape
    ('regex', '(?P<name>x)'),                      -- Python syntax
    ('regex', '(?<=a+)b'),                         -- ES2018 (PCRE2 cannot run it)
    ('uuid', '2eb8aa08-AA98-11ea-B4Aa-73B441D16380'),
    ('uuid', '2eb8aa08aa9811eab4aa73b441d16380')
) AS c(f, v);

-- the content keywords, asserted with the formats
SELECT state.json_schema_validate('{"contentEncoding": "base64"}', '"eyJmb28iOi%iYmFyIn0K"') AS annotation,
       state.json_schema_validate('{"contentEncoding": "base64"}', '"eyJmb28iOi%iYmFyIn0K"', true) AS bad_base64,
       state.json_schema_validate('{"contentMediaType": "application/json", "contentEncoding": "base64"}',
                                  '"ezp9Cg=="', true) AS bad_json,
       state.json_schema_validate('{"contentMediaType": "application/json", "contentEncoding": "base64"}',
                                  '"eyJmb28iOiAiYmFyIn0K"', true) AS good;
SELECT * FROM state.json_schema_errors(
    '{"contentMediaType": "application/json", "contentSchema": {"required": ["id"]}}',
    '"{\"foo\": 1}"', true);

-- patterns: ECMA-262 semantics
SELECT state.json_schema_validate('{"pattern": "^\\d+$"}', '"৪২"') AS ascii_digit,
       state.json_schema_validate('{"pattern": "^\\p{digit}+$"}', '"৪২"') AS unicode_digit,
       state.json_schema_validate('{"pattern": "^\\w$"}', '"é"') AS ascii_word,
       state.json_schema_validate('{"pattern": "^\\s$"}', '"\u00a0"') AS unicode_space,
       state.json_schema_validate('{"pattern": "^🐲{2}$"}', '"🐲🐲"') AS non_bmp,
       state.json_schema_validate('{"pattern": "^abc$"}', to_jsonb(E'abc\n'::text)) AS dollar_at_end,
       state.json_schema_validate('{"pattern": "^(?:a|b)+.$"}', to_jsonb(E'ab\n'::text)) AS dot_no_newline,
       state.json_schema_validate('{"pattern": "^[^]$"}', to_jsonb(E'\n'::text)) AS any_char;
SELECT state.json_schema_validate('{"patternProperties": {"^x-(?<n>[a-z]+)$": {"type": "integer"}}}',
                                  '{"x-a": 1, "x-b": "two"}') AS pattern_properties;

-- an invalid pattern is refused when the schema is compiled: 2201B
SELECT t.expect_error_verbose($$SELECT state.json_schema_validate('{"properties": {"a": {"pattern": "(a|b"}}}', '1')$$);
SELECT t.expect_error_verbose($$SELECT state.json_schema_validate('{"patternProperties": {"\\a": true}}', '{}')$$);
SELECT t.expect_error_verbose($$SELECT state.json_schema_validate('{"pattern": "(?<=a+)b"}', '"b"')$$);
SELECT t.expect_error_verbose($$SELECT state.create_collection('sf_bad', stream => 'sf', schema => '{"type": "object", "properties": {"h": {"pattern": "a++"}}}')$$);
