-- rls: row-level security policies hold through state.apply, get, get_many,
-- get_versioned, get_type and snapshot as through the equivalent statements;
-- a refused batch changes nothing; the log stays closed to filtered roles.
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE ROLE regress_rls_alice IN ROLE state_writer;
CREATE ROLE regress_rls_bob IN ROLE state_writer;
GRANT USAGE ON SCHEMA t TO regress_rls_alice, regress_rls_bob;

-- tenants by membership: the policy has a sub-select, so it must be planned
CREATE TABLE rls_members (role name, tenant text);
INSERT INTO rls_members VALUES ('regress_rls_alice', 'a'), ('regress_rls_bob', 'b');
GRANT SELECT ON rls_members TO regress_rls_alice, regress_rls_bob;
CREATE TABLE rls_notes (id text PRIMARY KEY, tenant text NOT NULL, body text,
                        locked boolean NOT NULL DEFAULT false);
SELECT state.create_collection('rls_notes', 'note', table_name => 'rls_notes', stream => 'rls');
GRANT SELECT, INSERT, UPDATE, DELETE ON rls_notes TO regress_rls_alice, regress_rls_bob;
ALTER TABLE rls_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rls_notes
    USING (tenant IN (SELECT m.tenant FROM rls_members m WHERE m.role = current_user));
-- locked notes may be read but not changed or deleted
CREATE POLICY unlocked_update ON rls_notes AS RESTRICTIVE FOR UPDATE USING (NOT locked);
CREATE POLICY unlocked_delete ON rls_notes AS RESTRICTIVE FOR DELETE USING (NOT locked);
-- the owner (no FORCE) writes both tenants' rows
SELECT applied FROM state.apply(jsonb_build_array(
    t.ev('note', 'a1', 'insert', '{"tenant": "a", "body": "alice one"}'),
    t.ev('note', 'a2', 'insert', '{"tenant": "a", "body": "alice locked", "locked": true}'),
    t.ev('note', 'b1', 'insert', '{"tenant": "b", "body": "bob secret"}')), 'rls');

-- reads: another tenant's row is absent
SET ROLE regress_rls_alice;
SELECT state.get('note', 'a1', 'rls') AS own, state.get('note', 'b1', 'rls') AS other;
SELECT state.get_many('note', ARRAY['a1', 'a2', 'b1'], 'rls');
SELECT * FROM state.get_type('note', 'rls');
SELECT s->'headers'->>'control' AS ctl, s->'headers'->>'offset' AS "offset", s->>'key' AS key
  FROM state.snapshot('rls') s;
-- its offsets are the stream's true tail, as state.streams shows it
SELECT tail, events_applied FROM state.streams WHERE stream = 'rls';
-- the log itself holds every tenant's events: closed to a filtered role
-- (state.changes filters it for the role, below)
SELECT t.expect_error($$SELECT state.tail('rls')$$);
SELECT count(*) AS log_rows_seen FROM state.log_events WHERE stream = 'rls';

-- writes of one's own rows work
SELECT applied, last_offset FROM state.apply(jsonb_build_array(
    t.ev('note', 'a3', 'insert', '{"tenant": "a", "body": "new"}'),
    t.ev('note', 'a1', 'update', '{"tenant": "a", "body": "alice edited"}'),
    t.ev('note', 'a3', 'delete')), 'rls');
SELECT state.put('note', 'a4', '{"tenant": "a", "body": "put"}', stream => 'rls') IS NOT NULL AS put;

-- every way into another tenant's row is refused, with the event named
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('note', 'b1', 'update', '{"tenant": "b", "body": "hacked"}'), 'rls')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('note', 'b1', 'upsert', '{"tenant": "a", "body": "stolen"}'), 'rls')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('note', 'b1', 'delete'), 'rls')$$);
-- remove finds no row it may see: nothing to remove
SELECT state.remove('note', 'b1', 'rls') AS removed_hidden;
-- a strict insert of a hidden key fails as INSERT would: duplicate key
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('note', 'b1', 'insert', '{"tenant": "a", "body": "x"}'), 'rls')$$);
-- old_value conflicts on a hidden row do not show its stored value
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('note', 'b1', 'update', '{"tenant": "b", "body": "x"}', '{"body": "guess"}'), 'rls')$$);
-- writing a row into another tenant: WITH CHECK (here the USING expression)
SELECT t.expect_error_verbose($$SELECT * FROM state.apply(t.ev('note', 'a5', 'insert', '{"tenant": "b", "body": "planted"}'), 'rls')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('note', 'a1', 'update', '{"tenant": "b", "body": "moved"}'), 'rls')$$);
SELECT t.expect_error($$SELECT state.put('note', 'a6', '{"tenant": "b", "body": "planted"}', stream => 'rls')$$);
-- restrictive policies: a locked row is readable, not writable
SELECT state.get('note', 'a2', 'rls') AS locked_note;
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('note', 'a2', 'update', '{"tenant": "a", "body": "x", "locked": false}'), 'rls')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('note', 'a2', 'delete'), 'rls')$$);
-- a batch with one refused event applies none of them
SELECT t.expect_error($$SELECT * FROM state.apply(jsonb_build_array(
    t.ev('note', 'a7', 'insert', '{"tenant": "a", "body": "first"}'),
    t.ev('note', 'a1', 'update', '{"tenant": "a", "body": "second"}'),
    t.ev('note', 'a8', 'insert', '{"tenant": "b", "body": "third"}')), 'rls')$$);
-- reset would delete only the visible rows: refused
SELECT t.expect_error_verbose($$SELECT * FROM state.apply('{"headers": {"control": "reset"}}', 'rls')$$);
-- row_security = off: an error, as for a query
SET row_security = off;
SELECT t.expect_error($$SELECT state.get('note', 'a1', 'rls')$$);
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('note', 'a9', 'insert', '{"tenant": "a"}'), 'rls')$$);
RESET row_security;

-- bob sees and may write only his own
SET ROLE regress_rls_bob;
SELECT key, value->>'body' AS body FROM state.get_type('note', 'rls');
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('note', 'a1', 'delete'), 'rls')$$);
SELECT applied FROM state.apply(t.ev('note', 'b1', 'update', '{"tenant": "b", "body": "bob edited"}'), 'rls');
RESET ROLE;

-- what the owner sees: exactly the accepted changes, in the table and the log
SELECT id, tenant, body, locked FROM rls_notes ORDER BY id;
SELECT "offset", event->>'key' AS key, event->'headers'->>'operation' AS op
  FROM state.changes('rls');

-- a role under the policies follows the log: the events of the rows it sees
SET ROLE regress_rls_alice;
SELECT "offset", event->>'key' AS key, event->'headers'->>'operation' AS op, event->'value'->>'body' AS body
  FROM state.changes('rls');
RESET ROLE;
-- rows moving into and out of alice's view, written by the owner
SELECT applied FROM state.apply(jsonb_build_array(
    t.ev('note', 'b1', 'update', '{"tenant": "a", "body": "moved to a"}', '{"body": "bob edited"}'),
    t.ev('note', 'a4', 'upsert', '{"tenant": "b", "body": "moved to b"}'),
    t.ev('note', 'b2', 'insert', '{"tenant": "b", "body": "b only"}'),
    t.ev('note', 'b2', 'delete'),
    t.ev('note', 'a1', 'update', '{"tenant": "a", "body": "still a"}', '{"body": "alice edited"}')), 'rls');
SET ROLE regress_rls_alice;
SELECT "offset", event FROM state.changes('rls', '00000000000000000008');
-- folding what it was shown gives what it sees
WITH last AS (
    SELECT DISTINCT ON (event->>'key') event->>'key' AS key, event->'headers'->>'operation' AS op
      FROM state.changes('rls', '-1', 100000) WHERE event ? 'type' ORDER BY event->>'key', "offset" DESC)
SELECT (SELECT string_agg(key, ' ' ORDER BY key) FROM last WHERE op <> 'delete') AS folded,
       (SELECT string_agg(key, ' ' ORDER BY key) FROM state.get_type('note', 'rls')) AS visible;
RESET ROLE;
-- without SELECT on a collection table, no feed at all
REVOKE SELECT ON rls_notes FROM regress_rls_bob;
SET ROLE regress_rls_bob;
SELECT t.expect_error($$SELECT * FROM state.changes('rls')$$);
RESET ROLE;
GRANT SELECT ON rls_notes TO regress_rls_bob;
-- policies changed in the same session take effect at once (cache invalidation)
SET ROLE regress_rls_alice;
SELECT state.get('note', 'b1', 'rls') AS before_membership;
RESET ROLE;
INSERT INTO rls_members VALUES ('regress_rls_alice', 'b');
SET ROLE regress_rls_alice;
SELECT state.get('note', 'b1', 'rls') AS with_membership;
RESET ROLE;
ALTER POLICY tenant_rows ON rls_notes USING (tenant = 'a');
SET ROLE regress_rls_alice;
SELECT state.get('note', 'b1', 'rls') AS after_alter, state.get('note', 'a1', 'rls') IS NOT NULL AS own_after_alter;
RESET ROLE;
-- INSERT-only WITH CHECK differs from USING: it is the one inserts obey
CREATE POLICY insert_only_z ON rls_notes AS RESTRICTIVE FOR INSERT WITH CHECK (body LIKE 'z%');
SET ROLE regress_rls_alice;
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('note', 'a10', 'insert', '{"tenant": "a", "body": "nope"}'), 'rls')$$);
SELECT applied FROM state.apply(t.ev('note', 'a10', 'insert', '{"tenant": "a", "body": "zed"}'), 'rls');
RESET ROLE;
DROP POLICY tenant_rows ON rls_notes;
-- no permissive policy left: default deny
SET ROLE regress_rls_alice;
SELECT state.get('note', 'a1', 'rls') AS default_deny, count(*) AS rows_seen FROM state.get_type('note', 'rls');
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('note', 'a11', 'upsert', '{"tenant": "a", "body": "z"}'), 'rls')$$);
RESET ROLE;
-- the table's owner is not filtered, unless FORCE ROW LEVEL SECURITY
ALTER TABLE rls_notes OWNER TO regress_rls_bob;
SET ROLE regress_rls_bob;
SELECT count(*) AS owner_rows FROM state.get_type('note', 'rls');
RESET ROLE;
ALTER TABLE rls_notes FORCE ROW LEVEL SECURITY;
SET ROLE regress_rls_bob;
SELECT count(*) AS forced_owner_rows FROM state.get_type('note', 'rls');
RESET ROLE;
ALTER TABLE rls_notes NO FORCE ROW LEVEL SECURITY;
ALTER TABLE rls_notes OWNER TO CURRENT_USER;

-- a document collection with a hostile name: a policy on the jsonb value
SELECT state.create_collection('rls "odd".docs; --', 'doc', stream => 'rls') AS doc_table;
DO $$
DECLARE
    tbl regclass := (SELECT table_name FROM state.collections WHERE name = 'rls "odd".docs; --');
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format($p$CREATE POLICY "own ""docs""" ON %s USING (value->>'owner' = current_user)$p$, tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO regress_rls_alice, regress_rls_bob', tbl);
END
$$;
SET ROLE regress_rls_alice;
SELECT applied FROM state.apply(t.ev('doc', 'd1', 'insert', '{"owner": "regress_rls_alice", "n": 1}'), 'rls');
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('doc', 'd2', 'insert', '{"owner": "regress_rls_bob"}'), 'rls')$$);
SELECT state.increment('doc', 'd1', 'n', 1, 'rls') AS incremented;
RESET ROLE;
SELECT applied FROM state.apply(t.ev('doc', 'd3', 'insert', '{"owner": "regress_rls_bob"}'), 'rls');
SET ROLE regress_rls_bob;
SELECT * FROM state.get_type('doc', 'rls');
SELECT state.get('doc', 'd1', 'rls') AS alices;
SELECT * FROM state.get_versioned('doc', 'd3', 'rls');
SELECT count(*) AS alices_versioned FROM state.get_versioned('doc', 'd1', 'rls');
SELECT t.expect_error($$SELECT * FROM state.apply(t.ev('doc', 'd1', 'upsert', '{"owner": "regress_rls_bob"}'), 'rls')$$);
SELECT t.expect_error($$SELECT state.increment('doc', 'd1', 'n', 1, 'rls')$$);
RESET ROLE;

SELECT state.drop_collection('rls "odd".docs; --', 'rls', drop_table => true);
SELECT state.drop_collection('rls_notes', 'rls', drop_table => true);
DROP TABLE rls_members;
DROP OWNED BY regress_rls_alice;
DROP OWNED BY regress_rls_bob;
DROP ROLE regress_rls_alice;
DROP ROLE regress_rls_bob;
