-- alter_collection: mode, allow_extra and check_old_value change for the
-- next batch, in this backend and others
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TABLE alt_items (id text PRIMARY KEY, n int);
SELECT state.create_collection('alt_items', 'alt', table_name => 'alt_items', stream => 'alt');
SELECT applied FROM state.apply(t.ev('alt', 'a', 'insert', '{"n": 1}'), 'alt');

-- strict: a second insert of a key fails; lenient: it stores
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('alt', 'a', 'insert', '{"n": 2}'), 'alt')$$);
SELECT state.alter_collection('alt_items', 'alt', mode => 'lenient');
SELECT applied FROM state.apply(t.ev('alt', 'a', 'insert', '{"n": 2}'), 'alt');
SELECT state.get('alt', 'a', 'alt');

-- extras: refused, then ignored
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('alt', 'a', 'upsert', '{"n": 3, "extra": true}'), 'alt')$$);
SELECT state.alter_collection('alt_items', 'alt', allow_extra => true);
SELECT applied FROM state.apply(t.ev('alt', 'a', 'upsert', '{"n": 3, "extra": true}'), 'alt');

-- compare-and-set switched on
SELECT state.alter_collection('alt_items', 'alt', check_old_value => true);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('alt', 'a', 'update', '{"n": 4}', '{"id": "a", "n": 1}'), 'alt')$$);
SELECT applied FROM state.apply(t.ev('alt', 'a', 'update', '{"n": 4}', '{"id": "a", "n": 3}'), 'alt');

-- only the options given change
SELECT name, mode, allow_extra, check_old_value FROM state.collections WHERE stream = 'alt';

-- errors
SELECT t.expect_error($$SELECT state.alter_collection('alt_items', 'alt', mode => 'loose')$$);
SELECT t.expect_error($$SELECT state.alter_collection('nope', 'alt', mode => 'strict')$$);

-- inside a transaction that rolls back, nothing changes
BEGIN;
SELECT state.alter_collection('alt_items', 'alt', mode => 'strict');
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('alt', 'a', 'insert', '{"n": 5}'), 'alt')$$);
ROLLBACK;
SELECT applied FROM state.apply(t.ev('alt', 'a', 'insert', '{"n": 5}'), 'alt');
SELECT name, mode FROM state.collections WHERE stream = 'alt';

SELECT state.drop_collection('alt_items', 'alt', drop_table => true);
