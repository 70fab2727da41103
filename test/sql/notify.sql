-- notify: the SQL surface of notifications, txids and retention that does
-- not need a second session (test/specs/notify.spec has the concurrent part,
-- test/t/subscriber.js the subscriber protocol, test/t/replica.sh standbys,
-- restarts and the worker).
SET search_path = public;
SELECT state.create_collection('nt_docs', stream => 'nt', mode => 'lenient');

-- channel names: plain names as they are, anything else hashed, always a
-- valid identifier under 64 bytes
SELECT s, state.channel(s), length(state.channel(s)) < 64 AS fits
  FROM unnest(ARRAY['default', 'nt', 'Mixed', 'with space', 'a"b;c', 'ünï',
                    repeat('x', 48), repeat('x', 49), '']) s;

-- publish: size-checked, on an existing stream, non-empty topic
SELECT state.publish('typing', '{"user": "ann"}', 'nt');
SELECT state.publish('typing', NULL, 'nt');
SELECT t.expect_error_verbose($$SELECT state.publish('big', jsonb_build_object('blob', repeat('x', 8000)), 'nt')$$);
SELECT t.expect_error($$SELECT state.publish('t', '{}', 'no_such_stream')$$);
SELECT t.expect_error($$SELECT state.publish('', '{}', 'nt')$$);
SELECT t.expect_error($$SELECT state.publish(NULL, '{}', 'nt')$$);
-- just under the limit is fine
SELECT state.publish('big', jsonb_build_object('blob', repeat('x', 7900)), 'nt');

-- txids: recorded with the batch, in its transaction
SELECT applied FROM state.apply('[
  {"type": "nt_docs", "key": "a", "value": 1, "headers": {"operation": "upsert", "txid": "nt-1"}},
  {"type": "nt_docs", "key": "b", "value": 2, "headers": {"operation": "upsert", "txid": "nt-1"}},
  {"type": "nt_docs", "key": "c", "value": 3, "headers": {"operation": "upsert", "txid": "nt-2"}},
  {"type": "nt_docs", "key": "d", "value": 4, "headers": {"operation": "upsert"}}]', 'nt');
SELECT last_seq, count(*) AS distinct_txids FROM state._txids WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'nt') GROUP BY last_seq;
SELECT state.txid_status('nt-1') <> 'unknown' AS nt1_known, state.txid_status('nt-2') <> 'unknown' AS nt2_known,
       state.txid_status('nt-3') AS nt3;
SELECT state.await_txid('nt-1', 0) AS at_once, state.await_txid('nt-2') AS default_timeout,
       state.await_txid('nt-3', 50) AS times_out;
-- a rolled-back batch's txid stays unknown
BEGIN;
SELECT applied FROM state.apply('{"type": "nt_docs", "key": "e", "value": 5, "headers": {"operation": "upsert", "txid": "nt-rb"}}', 'nt');
ROLLBACK;
SELECT state.txid_status('nt-rb') AS rolled_back, state.await_txid('nt-rb', 50) AS awaited;
-- a batch of many txids: its rows stored in chunks of 1,000
-- (table_multi_insert), each distinct txid once (every one sent twice, far
-- apart), all of them found; 9,000 distinct txids (at least 8,192) begin a
-- gen of their own, which no earlier batch wrote in, and are packed: rows
-- of up to 200 sorted hashes that share their top 10 bits, under the
-- group's key (top bits, lower bits all set)
SELECT state.create_collection('nt_many', stream => 'nt_many', mode => 'lenient');
SELECT applied FROM state.apply((SELECT jsonb_agg(jsonb_build_object('type', 'nt_many', 'key', 'm' || i, 'value', i,
                                  'headers', jsonb_build_object('operation', 'upsert', 'txid', 'ntm-' || i % 9000)) ORDER BY i)
                                  FROM generate_series(1, 18000) i), 'nt_many');
SELECT count(*) AS txids, count(DISTINCT h) AS distinct_hashes, count(DISTINCT gen) AS gens,
       count(DISTINCT last_seq) AS batches, count(DISTINCT (t.hash, t.packed)) AS txid_rows,
       bool_and(packed IS NOT NULL AND array_length(packed, 1) <= 200) AS all_packed,
       bool_and(t.hash = (h | ((1::bigint << 54) - 1))) AS under_group_key,
       bool_and(packed = (SELECT array_agg(x ORDER BY x) FROM unnest(packed) x)) AS sorted
  FROM state._txids t, unnest(coalesce(t.packed, ARRAY[t.hash])) h
 WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'nt_many');
SELECT count(*) AS others_in_its_gen FROM state._txids
 WHERE gen = (SELECT max(gen) FROM state._txids WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'nt_many'))
   AND stream_id <> (SELECT id FROM state._streams WHERE name = 'nt_many');
SELECT count(*) FILTER (WHERE state.txid_status('ntm-' || j) = 'unknown') AS unknown
  FROM generate_series(0, 8999, 7) j;
SELECT state.txid_status('ntm-9000') AS not_sent, state.txid_status('ntm-0') <> 'unknown' AS first,
       state.txid_status('ntm-8999') <> 'unknown' AS last;
-- a trigger on state._txids: its rows go in one by one, and it fires for each
CREATE TABLE nt_txid_rows (n integer);
CREATE FUNCTION nt_count_txid() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN INSERT INTO nt_txid_rows VALUES (1); RETURN NEW; END$$;
CREATE TRIGGER nt_count AFTER INSERT ON state._txids FOR EACH ROW EXECUTE FUNCTION nt_count_txid();
SELECT applied FROM state.apply((SELECT jsonb_agg(jsonb_build_object('type', 'nt_many', 'key', 't' || i, 'value', i,
                                  'headers', jsonb_build_object('operation', 'upsert', 'txid', 'ntt-' || i % 1500)) ORDER BY i)
                                  FROM generate_series(1, 3000) i), 'nt_many');
SELECT count(*) AS fired FROM nt_txid_rows;
SELECT count(*) FILTER (WHERE state.txid_status('ntt-' || j) = 'unknown') AS unknown
  FROM generate_series(0, 1499, 7) j;
-- and packed rows one by one too: it fires once per row
DELETE FROM nt_txid_rows;
SELECT applied FROM state.apply((SELECT jsonb_agg(jsonb_build_object('type', 'nt_many', 'key', 'p' || i, 'value', i,
                                  'headers', jsonb_build_object('operation', 'upsert', 'txid', 'ntp-' || i)) ORDER BY i)
                                  FROM generate_series(1, 8192) i), 'nt_many');
SELECT (SELECT count(*) FROM nt_txid_rows) = count(*) AS fired_per_row, count(*) < 8192 / 4 AS few_rows,
       sum(array_length(packed, 1)) AS txids
  FROM state._txids t JOIN state._streams s ON s.id = t.stream_id
 WHERE s.name = 'nt_many' AND packed IS NOT NULL
   AND last_seq = (SELECT max(last_seq) FROM state._txids WHERE stream_id = s.id);
SELECT count(*) FILTER (WHERE state.txid_status('ntp-' || j) = 'unknown') AS unknown
  FROM generate_series(1, 8192, 5) j;
DROP TRIGGER nt_count ON state._txids;
DROP FUNCTION nt_count_txid();
DROP TABLE nt_txid_rows;
SELECT state.drop_collection('nt_many', 'nt_many', drop_table => true);
-- bad arguments
SELECT t.expect_error($$SELECT state.await_txid('nt-1', -1)$$);
SELECT t.expect_error($$SELECT state.await_txid('nt-1', 10, 'durable')$$);
SELECT t.expect_error($$SELECT state.await_txid('', 10)$$);
SELECT t.expect_error($$SELECT state.await_txid(NULL, 10)$$);
SELECT state.txid_status(NULL) IS NULL AS strict_null;
SELECT txid_waiters FROM state.stats;

-- a transaction that applied events cannot be prepared (its notifications
-- and confirmations happen at commit)
BEGIN;
SELECT applied FROM state.apply('{"type": "nt_docs", "key": "p", "value": 1, "headers": {"operation": "upsert"}}', 'nt');
\set VERBOSITY terse
PREPARE TRANSACTION 'nt_p';
\set VERBOSITY default
SELECT count(*) AS not_prepared FROM pg_prepared_xacts;
SELECT state.get('nt_docs', 'p', 'nt') IS NULL AS rolled_back;

-- retention: the worker's pruning (state._maintain) drops whole log
-- segments beyond the limit and moves retained_from; older offsets are
-- refused by changes() with a hint to resync from a snapshot
SELECT applied FROM state.apply((SELECT jsonb_agg(jsonb_build_object('type', 'nt_docs', 'key', 'r' || g, 'value', g,
                                 'headers', jsonb_build_object('operation', 'upsert')))
                                   FROM generate_series(1, 1500) g), 'nt');
SELECT applied FROM state.apply('{"type": "nt_docs", "key": "last", "value": 0, "headers": {"operation": "upsert"}}', 'nt');
SELECT state.tail('nt');
SELECT t.expect_error($$SELECT state.set_retention('nt', max_events => 0)$$);
SELECT t.expect_error($$SELECT state.set_retention('no_such_stream', max_events => 10)$$);
SELECT state.set_retention('nt', max_events => 100);
SELECT retention_age, retention_events FROM state.streams WHERE stream = 'nt';
SELECT state._maintain(86400);
-- segments of 1000 events: the first (1..4) and the 1000-event one go, the
-- rest stay (at least the newest 100 events are always kept)
SELECT first_seq, last_seq FROM state.log WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'nt') ORDER BY first_seq;
SELECT tail, retained_from, events_retained FROM state.streams WHERE stream = 'nt';
SELECT t.expect_error_verbose($$SELECT * FROM state.changes('nt', '-1')$$);
SELECT count(*) AS from_retained FROM state.changes('nt', state.format_offset(1004), 10000);
-- the state itself is untouched by pruning
SELECT count(*) AS entities FROM state.get_type('nt_docs', 'nt');
-- age: segments applied longer ago than the limit go
SELECT state.set_retention('nt', max_age => interval '1 hour');
UPDATE state.log SET applied_at = now() - interval '2 hours'
 WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'nt') AND last_seq < 1505;
SELECT state._maintain(86400);
SELECT first_seq, last_seq FROM state.log WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'nt') ORDER BY first_seq;
SELECT tail, retained_from FROM state.streams WHERE stream = 'nt';
-- the tail survives even when the whole log is pruned
UPDATE state.log SET applied_at = now() - interval '2 hours'
 WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'nt');
SELECT state._maintain(86400);
SELECT tail, retained_from, events_retained FROM state.streams WHERE stream = 'nt';
SELECT applied, last_offset FROM state.apply('{"type": "nt_docs", "key": "after", "value": 1, "headers": {"operation": "upsert"}}', 'nt');
SELECT count(*) FROM state.changes('nt', state.format_offset(1505));
SELECT state.set_retention('nt');   -- no limits any more
SELECT retention_age, retention_events FROM state.streams WHERE stream = 'nt';

-- txid retention: rows older than durable_state.txid_retention go
-- (and their 5-minute bucket, which pruning goes by first)
UPDATE state._txids SET applied_at = now() - interval '2 days',
                        gen = floor(extract(epoch FROM now() - interval '2 days') / 300) * 16
 WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'nt');
-- look-ups go through the buckets, newest first, down to an old one
SELECT state.apply('{"type": "nt_docs", "key": "newer", "value": 1, "headers": {"operation": "upsert", "txid": "nt-newer"}}', 'nt') IS NOT NULL AS applied;
SELECT count(DISTINCT gen) AS buckets FROM state._txids WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'nt');
SELECT state.txid_status('nt-1') <> 'unknown' AS old_bucket_found, state.txid_status('nt-newer') <> 'unknown' AS newest_found,
       state.txid_status('nt-never') AS never;
DELETE FROM state._txids WHERE hash = (SELECT hash FROM state._txids t JOIN state._streams s ON s.id = t.stream_id
                                        WHERE s.name = 'nt' ORDER BY gen DESC LIMIT 1);
SELECT state._maintain(86400);
SELECT count(*) AS txid_rows FROM state._txids WHERE stream_id = (SELECT id FROM state._streams WHERE name = 'nt');
SELECT state.txid_status('nt-1') AS pruned;

-- the stats view
SELECT preloaded, worker_state IN ('running', 'not started', 'restarting') AS worker_state_ok,
       events_applied > 0 AS counted, notify_mode, streams > 0 AS has_streams
  FROM state.stats;
SHOW durable_state.notify;
SET durable_state.notify = worker;
SET durable_state.notify = off;
SELECT t.expect_error($$SET durable_state.notify = sometimes$$);
RESET durable_state.notify;
SELECT state.drop_collection('nt_docs', 'nt', drop_table => true);
