-- ingest: COPY state.ingest FROM STDIN streams NDJSON events into the
-- engine in batches (src/ingest.c): the same result as apply_text, errors
-- naming the event's index in the whole input and its line, atomic per
-- COPY, one source_offset for the whole input.
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT state.create_collection('ing_docs', 'ing_doc', stream => 'ing', mode => 'lenient');
CREATE TABLE ing_typed (id text PRIMARY KEY, n bigint, s text, b boolean);
SELECT state.create_collection('ing_typed', 'ing_t', table_name => 'ing_typed', stream => 'ing');

-- batches of 2: backslashes, quotes and blank lines pass through unchanged
COPY state.ingest FROM STDIN WITH (stream 'ing', batch_events 2);
{"type": "ing_doc", "key": "a", "value": {"s": "quote \" backslash \\ tab \t nl \n", "u": "\u00e9"}, "headers": {"operation": "insert"}}
{"type": "ing_t", "key": "t1", "value": {"n": 1, "s": "one", "b": true}, "headers": {"operation": "insert", "txid": "ing-1"}}

   
{"type": "ing_doc", "key": "b", "value": [1, 2.50, {"x": null}], "headers": {"operation": "upsert"}}
{"type":"ing_t","key":"t2","value":{"n":2,"s":"two","b":false},"headers":{"operation":"insert"}}
{"type": "ing_doc", "key": "a", "value": "\"\\/", "headers": {"operation": "upsert"}}
\.
SELECT key, value FROM ing_docs ORDER BY key;
SELECT * FROM ing_typed ORDER BY id;
SELECT seq, event FROM state.log_events WHERE stream = 'ing' ORDER BY seq;

-- an error names the event's index in the whole input and its line, and
-- rolls back every batch before it
COPY state.ingest FROM STDIN WITH (stream 'ing', batch_events 2);
{"type": "ing_doc", "key": "c", "value": 1, "headers": {"operation": "insert"}}
{"type": "ing_doc", "key": "d", "value": 1, "headers": {"operation": "insert"}}

{"type": "ing_doc", "key": "e", "value": 01, "headers": {"operation": "insert"}}
\.
COPY state.ingest FROM STDIN WITH (stream 'ing', batch_events 2);
{"type": "ing_doc", "key": "c", "value": 1, "headers": {"operation": "insert"}}
{"type": "ing_doc", "key": "d", "value": 1, "headers": {"operation": "insert"}}
{"type": "ing_t", "key": "t3", "value": {"n": "three"}, "headers": {"operation": "insert"}}
\.
COPY state.ingest FROM STDIN WITH (stream 'ing');
{"type": "ing_doc", "key": "c", "value": 1, "headers": {"operation": "insert"}}
{"type": "nope", "key": "d", "value": 1, "headers": {"operation": "insert"}}
\.
SELECT count(*) AS docs FROM ing_docs;
SELECT count(*) AS logged FROM state.log_events WHERE stream = 'ing';

-- exactly once: the whole input's source_offset
COPY state.ingest FROM STDIN WITH (stream 'ing', source_offset '0000000010', batch_events 1);
{"type": "ing_doc", "key": "o1", "value": 1, "headers": {"operation": "insert"}}
{"type": "ing_doc", "key": "o2", "value": 2, "headers": {"operation": "insert"}}
\.
SELECT source_offset FROM state.streams WHERE stream = 'ing';
-- replayed: read, nothing applied (COPY 0)
COPY state.ingest FROM STDIN WITH (stream 'ing', source_offset '0000000010', batch_events 1);
{"type": "ing_doc", "key": "o1", "value": 1, "headers": {"operation": "insert"}}
{"type": "ing_doc", "key": "o2", "value": 2, "headers": {"operation": "insert"}}
\.
SELECT count(*) AS docs FROM ing_docs;
-- an empty input records its offset
COPY state.ingest FROM STDIN WITH (stream 'ing', source_offset '0000000011');
\.
SELECT source_offset FROM state.streams WHERE stream = 'ing';

-- refused: other options, a column list, a bad offset, an unknown stream,
-- rows by INSERT, no privilege (psql skips a failed COPY's data up to \.)
COPY state.ingest FROM STDIN WITH (format csv);
\.
COPY state.ingest (line) FROM STDIN;
\.
COPY state.ingest FROM STDIN WITH (stream 'ing', source_offset 'now');
\.
COPY state.ingest FROM STDIN WITH (stream 'ing', batch_events 0);
\.
COPY state.ingest FROM STDIN WITH (stream 'no_such_stream');
{"type": "ing_doc", "key": "z", "value": 1, "headers": {"operation": "insert"}}
\.
INSERT INTO state.ingest VALUES ('{}');
SELECT count(*) AS rows_in_ingest FROM state.ingest;
DROP ROLE IF EXISTS ing_nobody;
CREATE ROLE ing_nobody;
GRANT USAGE ON SCHEMA state TO ing_nobody;
SET ROLE ing_nobody;
COPY state.ingest FROM STDIN WITH (stream 'ing');
\.
RESET ROLE;
REVOKE USAGE ON SCHEMA state FROM ing_nobody;
DROP ROLE ing_nobody;

-- other COPYs are untouched
CREATE TEMP TABLE ing_plain (line text);
COPY ing_plain FROM STDIN;
a\tb
\.
SELECT line FROM ing_plain;

SELECT state.drop_collection('ing_docs', 'ing', drop_table => true);
SELECT state.drop_collection('ing_typed', 'ing', drop_table => true);
