-- hostile: names with quotes, semicolons, dots, spaces, unicode, mixed case
-- and 63+ bytes through the key/value API, TTLs, notifications and txids;
-- injection attempts through every argument and event member.  A sentinel
-- table must survive, and every name must come back exactly.
SET search_path = public;
CREATE TABLE hx_sentinel (id int);
INSERT INTO hx_sentinel VALUES (1);

-- a stream, types, keys and members that would break unquoted SQL
SELECT state.create_collection($$hx 'docs'; DROP TABLE hx_sentinel; --$$,
                               $$t'"; DROP TABLE hx_sentinel; --$$,
                               stream => $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$,
                               mode => 'lenient', default_ttl => '1 hour');
SELECT state.create_collection('HX Typed ' || repeat('ü', 40),
                               $$typed "x"$$,
                               primary_key => 'the "id"; --',
                               stream => $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$,
                               schema => $${"type": "object", "properties": {
                                   "the \"id\"; --": {"type": "string"},
                                   "count'); DROP TABLE hx_sentinel; --": {"type": "integer"},
                                   "_version": {"type": "string"},
                                   "_extra": {"type": "boolean"}}}$$) IS NOT NULL AS created;
SELECT name, type, version_column, extra_column, default_ttl
  FROM state.collections WHERE stream LIKE 'hx %' ORDER BY name COLLATE "C";
SELECT attname FROM pg_attribute
 WHERE attrelid = (SELECT table_name FROM state.collections WHERE type = $$typed "x"$$)
   AND attnum > 0 ORDER BY attnum;

-- the key/value API
SELECT state.put($$t'"; DROP TABLE hx_sentinel; --$$, $$k'); DROP TABLE hx_sentinel; --$$,
                 '{"a'';--": 1}', stream => $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$) IS NOT NULL AS put;
SELECT * FROM state.get_versioned($$t'"; DROP TABLE hx_sentinel; --$$, $$k'); DROP TABLE hx_sentinel; --$$,
                                  $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$);
SELECT state.increment($$t'"; DROP TABLE hx_sentinel; --$$, $$k'); DROP TABLE hx_sentinel; --$$,
                       $$a';--$$, 41, $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$) AS incremented;
SELECT state.increment($$t'"; DROP TABLE hx_sentinel; --$$, $$k'); DROP TABLE hx_sentinel; --$$,
                       $$new "member"; --$$, 1, $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$) AS new_member;
SELECT state.put($$typed "x"$$, 'ключ "1"; --', jsonb_build_object('count''); DROP TABLE hx_sentinel; --', 7),
                 stream => $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$, expected_version => 0) IS NOT NULL AS typed_put;
SELECT state.increment($$typed "x"$$, 'ключ "1"; --', 'count''); DROP TABLE hx_sentinel; --', 3,
                       $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$) AS typed_incremented;
SELECT * FROM state.get_versioned($$typed "x"$$, 'ключ "1"; --', $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$);
SELECT t.expect_error($$SELECT state.put('typed "x"', 'ключ "1"; --', '{}', stream => 'hx "stream"; DROP TABLE hx_sentinel; -- ✓', expected_version => 1)$$);
-- a member naming the version column is a member like any other (kept in the extra column)
SELECT state.put($$typed "x"$$, 'v', '{"_version": "not mine", "_extra": true}',
                 stream => $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$) IS NOT NULL AS put_members;
SELECT * FROM state.get_versioned($$typed "x"$$, 'v', $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$);

-- TTLs (default and per put) and the sweep
SELECT state.put($$t'"; DROP TABLE hx_sentinel; --$$, $$gone'; --$$, '1', interval '1 ms',
                 $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$) IS NOT NULL AS put_ttl;
SELECT pg_sleep(0.02);
SELECT state.get($$t'"; DROP TABLE hx_sentinel; --$$, $$gone'; --$$, $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$) AS expired;
SELECT state._expire() AS swept;
SELECT key FROM state._expiry WHERE type = $$t'"; DROP TABLE hx_sentinel; --$$ ORDER BY key;
SELECT state.remove($$t'"; DROP TABLE hx_sentinel; --$$, $$k'); DROP TABLE hx_sentinel; --$$,
                    $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$) AS removed;

-- the log has every name exactly
SELECT event->>'type' AS type, event->>'key' AS key, event->'headers'->>'operation' AS op
  FROM state.changes($$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$) ORDER BY "offset";

-- channels, publish, txids, retention
SELECT state.channel($$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$) ~ '^state_[0-9a-f]{32}$' AS md5_channel,
       state.channel('Mixed') ~ '^state_[0-9a-f]{32}$' AS mixed_case_hashed,
       state.channel(repeat('a', 49)) ~ '^state_[0-9a-f]{32}$' AS long_hashed,
       state.channel(repeat('a', 48)) = 'state_' || repeat('a', 48) AS plain_48;
SELECT state.publish($$topic'); DROP TABLE hx_sentinel; --$$, '{"m": "x\"; --"}',
                     $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$);
SELECT applied FROM state.apply(jsonb_build_object(
    'type', $$t'"; DROP TABLE hx_sentinel; --$$, 'key', 'tx',
    'value', 1, 'headers', jsonb_build_object('operation', 'upsert', 'txid', $$tx'); DROP TABLE hx_sentinel; --$$)),
    $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$);
SELECT state.await_txid($$tx'); DROP TABLE hx_sentinel; --$$, 0) AS confirmed,
       state.txid_status($$tx'); DROP TABLE hx_sentinel; --$$) <> 'unknown' AS known;
SELECT state.set_retention($$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$, max_events => 1000);
SELECT retention_events FROM state.streams WHERE stream = $$hx "stream"; DROP TABLE hx_sentinel; -- ✓$$;

-- names that are too long or empty are refused cleanly
SELECT t.expect_error($$SELECT state.put('', 'k', '1', stream => 'hx "stream"; DROP TABLE hx_sentinel; -- ✓')$$);
SELECT t.expect_error($$SELECT state.increment('t''"; DROP TABLE hx_sentinel; --', 'k', '', 1, 'hx "stream"; DROP TABLE hx_sentinel; -- ✓')$$);
SELECT t.expect_error($$SELECT state.create_collection('hx ok', 'hx ok', stream => 'hx "stream"; DROP TABLE hx_sentinel; -- ✓', version_column => 'x"; DROP TABLE hx_sentinel; --')$$);

SELECT count(*) AS sentinel_survived FROM hx_sentinel;
