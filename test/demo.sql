-- durable_state demo: a tiny chat room.  Run by test/demo.sh with
--     psql -X -e -v ON_ERROR_STOP=1 -f test/demo.sql
-- (-e echoes each SQL statement before its result).

\pset pager off
\pset null '(null)'
SET client_min_messages = warning;

\echo
\echo '== 1. Install the extension (it lives in schema "state")'
CREATE EXTENSION durable_state;

\echo
\echo '== 2. Collections.  "users" adopts an ordinary typed table: Postgres types,'
\echo '==    NOT NULL, UNIQUE and defaults all apply to incoming events.'
CREATE TABLE users (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    email      text UNIQUE,
    created_at timestamptz DEFAULT now()
);
SELECT state.create_collection('users', 'user', table_name => 'users');

\echo
\echo '==    "messages" is a document collection: (key text primary key, value jsonb).'
SELECT state.create_collection('messages', 'message');

SELECT name, type, stream, table_name, primary_key, kind, mode FROM state.collections ORDER BY name;

\echo
\echo '== 3. Apply a batch of protocol change events, atomically and in order.'
\echo '==    Each applied event gets a stream offset; txids can be awaited later.'
SELECT * FROM state.apply('[
  {"type": "user", "key": "u1", "value": {"id": "u1", "name": "Ada"},
   "headers": {"operation": "insert", "txid": "t1"}},
  {"type": "user", "key": "u2", "value": {"id": "u2", "name": "Grace", "email": "grace@example.com"},
   "headers": {"operation": "insert", "txid": "t1"}},
  {"type": "message", "key": "m1", "value": {"user": "u1", "text": "hi"},
   "headers": {"operation": "insert"}},
  {"type": "message", "key": "m2", "value": {"user": "u2", "text": "hello Ada"},
   "headers": {"operation": "insert"}},
  {"type": "message", "key": "m3", "value": {"user": "u1", "text": "oops, wrong room"},
   "headers": {"operation": "insert"}}
]'::jsonb);

\echo
\echo '== 4. More events: an update, an upsert (insert-or-replace) and a delete.'
\echo '==    The primary-key member may be omitted: it is filled in from "key".'
SELECT * FROM state.apply('[
  {"type": "user", "key": "u1", "value": {"name": "Ada Lovelace", "email": "ada@example.com"},
   "old_value": {"id": "u1", "name": "Ada"},
   "headers": {"operation": "update", "txid": "t2"}},
  {"type": "user", "key": "u3", "value": {"id": "u3", "name": "Linus"},
   "headers": {"operation": "upsert", "txid": "t2"}},
  {"type": "message", "key": "m3", "headers": {"operation": "delete"}}
]'::jsonb);

\echo
\echo '== 5. The state is in ordinary tables: query it with plain SQL.'
SELECT id, name, email, created_at IS NOT NULL AS has_created_at FROM users ORDER BY id;

\echo '==    A join between the typed table and the document collection:'
SELECT m.key AS message, u.name AS author, m.value->>'text' AS text
  FROM messages m
  JOIN users u ON u.id = m.value->>'user'
 ORDER BY m.key;

\echo
\echo '== 6. Reads through the API: one entity, several, a whole type.'
SELECT state.get('user', 'u1');
SELECT state.get_many('user', ARRAY['u2', 'u3', 'nobody']);
SELECT * FROM state.get_type('message');

\echo
\echo '== 7. The durable change log: every applied event with its offset.'
\echo '==    A subscriber reads changes(since => last offset seen) after each NOTIFY.'
SELECT * FROM state.changes();
SELECT state.tail() AS tail;
SELECT * FROM state.changes(since => '00000000000000000005');

\echo
\echo '== 8. A snapshot: snapshot-start, one insert per live entity, snapshot-end.'
SELECT * FROM state.snapshot();

\echo
\echo '== 9. Subscribers follow the log: read changes(since => the last offset seen).'
\echo '==    (LISTEN/NOTIFY wake-ups and await_txid arrive with the notification layer;'
\echo '==    the loop below is what a subscriber runs after each wake-up.)'
SELECT state.tail() AS seen \gset
SELECT * FROM state.apply('{"type": "message", "key": "m4",
  "value": {"user": "u3", "text": "a new message"},
  "headers": {"operation": "insert", "txid": "t3"}}'::jsonb);
SELECT "offset", event->>'type' AS type, event->>'key' AS key, event->'value' AS value
  FROM state.changes(since => :'seen');
SELECT to_regprocedure('state.await_txid(text,integer,text)') IS NOT NULL AS has_await \gset
\if :has_await
SELECT state.await_txid('t3', 2000) AS t3_committed;
\endif

\echo
\echo '== 10. A collection with a JSON Schema: the table is generated from it and'
\echo '==     every value is checked against it.'
SELECT state.create_collection('reactions', 'reaction', schema => '{
  "type": "object",
  "required": ["message", "user", "emoji"],
  "properties": {
    "id":      {"type": "string"},
    "message": {"type": "string"},
    "user":    {"type": "string"},
    "emoji":   {"type": "string", "enum": ["👍", "🎉", "❤️"]},
    "at":      {"type": "string", "format": "date-time"}
  },
  "additionalProperties": false}');
SELECT * FROM state.apply('{"type": "reaction", "key": "r1",
  "value": {"message": "m1", "user": "u2", "emoji": "🎉", "at": "2025-01-31T12:00:00Z"},
  "headers": {"operation": "insert"}}'::jsonb);
SELECT id, message, "user", emoji, at FROM reactions;

\echo
\echo '== 11. Bad events are rejected with a clear error, and nothing in the batch'
\echo '==     is applied.  (Errors below are intentional.)'
\set ON_ERROR_STOP 0
\echo '--- a duplicate insert in strict mode:'
SELECT * FROM state.apply('[
  {"type": "message", "key": "m5", "value": {"user": "u2", "text": "lost with the batch"},
   "headers": {"operation": "insert"}},
  {"type": "user", "key": "u1", "value": {"id": "u1", "name": "Ada again"},
   "headers": {"operation": "insert"}}
]'::jsonb);
\echo '    SQLSTATE' :LAST_ERROR_SQLSTATE
\echo '--- a NOT NULL column missing from the value:'
SELECT * FROM state.apply('{"type": "user", "key": "u9", "value": {"id": "u9"},
  "headers": {"operation": "insert"}}'::jsonb);
\echo '    SQLSTATE' :LAST_ERROR_SQLSTATE
\echo '--- a malformed event (unknown operation):'
SELECT * FROM state.apply('{"type": "user", "key": "u9", "value": {"id": "u9", "name": "X"},
  "headers": {"operation": "replace"}}'::jsonb);
\echo '    SQLSTATE' :LAST_ERROR_SQLSTATE
\echo '--- a value that breaks the collection''s schema:'
SELECT * FROM state.apply('{"type": "reaction", "key": "r2",
  "value": {"message": "m1", "user": "u1", "emoji": "🙈"},
  "headers": {"operation": "insert"}}'::jsonb);
\echo '    SQLSTATE' :LAST_ERROR_SQLSTATE
\set ON_ERROR_STOP 1
\echo '--- m5 was not stored (the whole batch rolled back):'
SELECT state.get('message', 'm5') AS m5;

\echo
\echo '== 12. Stream and extension status.'
\x on
SELECT * FROM state.streams;
SELECT * FROM state.stats;
\x off

\echo
\echo '== Done.'
