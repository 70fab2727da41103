-- ttl: state.put / state.remove and entity TTLs.  The worker serves another
-- database, so the sweep (state._expire) is called here directly.
SET search_path = public;
SELECT state.create_collection('tl_sess', stream => 'tl', mode => 'lenient');
SELECT state.create_collection('tl_strict', stream => 'tl');

-- put is an upsert event, remove a delete event (false when absent)
SELECT state.put('tl_sess', 'a', '{"n": 1}', stream => 'tl') AS off1,
       state.put('tl_sess', 'a', '{"n": 2}', stream => 'tl') AS off2;
SELECT state.get('tl_sess', 'a', 'tl');
SELECT state.remove('tl_sess', 'a', 'tl') AS removed, state.remove('tl_sess', 'a', 'tl') AS again,
       state.remove('tl_strict', 'nope', 'tl') AS strict_absent;
SELECT event->'headers'->>'operation' AS op, event->>'key' AS key FROM state.changes('tl') ORDER BY "offset";
SELECT t.expect_error($$SELECT state.put('tl_sess', 'x', NULL, stream => 'tl')$$);
SELECT t.expect_error($$SELECT state.put('tl_sess', 'x', '1', interval '0', 'tl')$$);
SELECT t.expect_error($$SELECT state.put('tl_nope', 'x', '1', stream => 'tl')$$);
SELECT has_ttl FROM state._collections WHERE name = 'tl_sess';

-- an expired entity is gone for every read at once, before the sweep
SELECT state.put('tl_sess', 'e1', '"soon"', interval '1 ms', 'tl') IS NOT NULL AS put,
       state.put('tl_sess', 'e2', '"later"', interval '1 hour', 'tl') IS NOT NULL AS put2,
       state.put('tl_sess', 'keep', '"forever"', stream => 'tl') IS NOT NULL AS put3;
SELECT has_ttl FROM state._collections WHERE name = 'tl_sess';
SELECT pg_sleep(0.02);
SELECT state.get('tl_sess', 'e1', 'tl') AS e1, state.get('tl_sess', 'e2', 'tl') AS e2;
SELECT state.get_many('tl_sess', ARRAY['e1', 'e2', 'keep'], 'tl');
SELECT key, value FROM state.get_type('tl_sess', 'tl') ORDER BY key;
SELECT s->>'key' AS snapshot_key FROM state.snapshot('tl') s WHERE s ? 'key' ORDER BY 1;
SELECT count(*) AS rows_still_there FROM tl_sess;
SELECT state.remove('tl_sess', 'e1', 'tl') AS remove_expired;
-- the sweep deletes it with a logged delete event
SELECT state._expire() AS expired;
SELECT count(*) AS rows_after FROM tl_sess;
SELECT event->'headers'->>'operation' AS op, event->>'key' AS key FROM state.changes('tl') ORDER BY "offset" DESC LIMIT 1;
SELECT key FROM state._expiry WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'tl');

-- any write or delete through a batch ends a TTL; a put with a TTL sets a new one
SELECT state.put('tl_sess', 'r', '1', interval '1 ms', 'tl') IS NOT NULL AS put;
SELECT applied FROM state.apply(t.ev('tl_sess', 'r', 'upsert', '2'), 'tl');
SELECT pg_sleep(0.02);
SELECT state.get('tl_sess', 'r', 'tl') AS kept_by_write;
SELECT state.put('tl_sess', 'r', '3', interval '1 ms', 'tl') IS NOT NULL AS put;
SELECT applied FROM state.apply(t.ev('tl_sess', 'r', 'delete'), 'tl');
SELECT applied FROM state.apply(t.ev('tl_sess', 'r', 'insert', '4'), 'tl');
SELECT pg_sleep(0.02);
SELECT state.get('tl_sess', 'r', 'tl') AS reinserted_has_no_ttl;
-- a rolled-back put leaves no TTL
BEGIN;
SELECT state.put('tl_sess', 'r', '5', interval '1 ms', 'tl') IS NOT NULL AS put;
ROLLBACK;
SELECT pg_sleep(0.02);
SELECT state.get('tl_sess', 'r', 'tl') AS after_rollback;

-- an entity deleted behind the collection's back only loses its expiry
SELECT state.put('tl_sess', 'gone', '1', interval '1 ms', 'tl') IS NOT NULL AS put;
SELECT state.put('tl_sess', 'due', '1', interval '1 ms', 'tl') IS NOT NULL AS put;
DELETE FROM tl_sess WHERE key = 'gone';
SELECT state.alter_collection('tl_sess', 'tl', mode => 'strict');
SELECT pg_sleep(0.02);
SET client_min_messages = error;
SELECT state._expire() AS expired;
RESET client_min_messages;
SELECT key FROM state._expiry WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'tl');
SELECT count(*) FILTER (WHERE key = 'due') AS due_left FROM tl_sess;

-- privileges: a TTL (an expiry deletes) needs INSERT, UPDATE and DELETE on the table
CREATE ROLE tl_writer IN ROLE state_writer;
GRANT USAGE ON SCHEMA state, t TO tl_writer;
GRANT SELECT, INSERT, UPDATE ON tl_sess TO tl_writer;
SET ROLE tl_writer;
SELECT state.put('tl_sess', 'w', '1', stream => 'tl') IS NOT NULL AS put_without_ttl;
SELECT t.expect_error($$SELECT state.put('tl_sess', 'w', '1', interval '1 hour', 'tl')$$);
SELECT t.expect_error($$SELECT state._ttl_set('tl', 'tl_sess', 'keep', now())$$);
SELECT t.expect_error($$SELECT state._expire()$$);
SELECT t.expect_error($$SELECT * FROM state._expiry$$);
RESET ROLE;
SELECT state.get('tl_sess', 'w', 'tl') AS w, state.get('tl_sess', 'keep', 'tl') AS keep;

SELECT state.drop_collection('tl_sess', 'tl', drop_table => true);
SELECT state.drop_collection('tl_strict', 'tl', drop_table => true);
DROP OWNED BY tl_writer;
DROP ROLE tl_writer;
