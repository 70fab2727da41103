-- Row-level security, differentially: random events applied by a role under
-- policies (sub-selects, permissive and restrictive, per command, a WITH
-- CHECK different from USING) must be accepted or refused exactly as the
-- equivalent INSERT / UPDATE ... WHERE / DELETE ... WHERE statements on a
-- twin table with the same policies, and leave the same rows; get must see
-- exactly the rows a SELECT sees.  Mapping (README, "Row-level security"):
-- an UPDATE or DELETE that skips a stored row is a refused event (42501);
-- an insert of a stored key is 23505 first; a missing key is P0002 (no_data_found).

SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS durable_state;

SELECT plan(9);

CREATE ROLE tap_rls_alice IN ROLE state_writer;
CREATE TABLE members (role name, tenant text);
INSERT INTO members VALUES ('tap_rls_alice', 'a'), ('tap_rls_alice', 'c');
GRANT SELECT ON members TO tap_rls_alice;
CREATE TABLE ours (id text PRIMARY KEY, tenant text NOT NULL, body text,
                   locked boolean NOT NULL DEFAULT false);
CREATE TABLE theirs (LIKE ours INCLUDING ALL);
SELECT ok(state.create_collection('ours', 'note', table_name => 'ours', stream => 'rlsdiff') IS NOT NULL,
          'a collection over the table');

DO $$
DECLARE
    t text;
    mine text := 'tenant IN (SELECT m.tenant FROM members m WHERE m.role = current_user)';
BEGIN
    FOREACH t IN ARRAY ARRAY['ours', 'theirs'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY sel ON %I FOR SELECT USING (%s OR tenant = %L)', t, mine, 'public');
        EXECUTE format('CREATE POLICY ins ON %I FOR INSERT WITH CHECK (%s AND coalesce(body, %L) NOT LIKE %L)',
                       t, mine, '', 'bad%');
        EXECUTE format('CREATE POLICY upd ON %I FOR UPDATE USING (%s OR tenant = %L) WITH CHECK (%s)',
                       t, mine, 'public', mine);
        EXECUTE format('CREATE POLICY upd_unlocked ON %I AS RESTRICTIVE FOR UPDATE USING (NOT locked)', t);
        EXECUTE format('CREATE POLICY del ON %I FOR DELETE USING (%s AND body IS DISTINCT FROM %L)',
                       t, mine, 'keep');
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO tap_rls_alice', t);
    END LOOP;
END
$$;

-- the same starting rows in both, written by the owner
SELECT setseed(0.42);
CREATE TEMP TABLE seed AS
SELECT 'k' || i AS id,
       (ARRAY['a', 'b', 'c', 'public'])[1 + floor(random() * 4)::int] AS tenant,
       (ARRAY['x', 'keep', 'bad1', NULL])[1 + floor(random() * 4)::int] AS body,
       random() < 0.25 AS locked
  FROM generate_series(0, 19) i;
SELECT ok((SELECT applied FROM state.apply(
              (SELECT jsonb_agg(jsonb_build_object('type', 'note', 'key', id,
                                                   'value', jsonb_build_object('tenant', tenant, 'body', body, 'locked', locked),
                                                   'headers', jsonb_build_object('operation', 'insert')))
                 FROM seed), 'rlsdiff')) = 20, 'the owner seeds 20 rows');
INSERT INTO theirs SELECT id, tenant, body, locked FROM seed;

-- what the owner sees of each table, past the policies
CREATE FUNCTION tap_exists(tbl text, k text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
DECLARE
    r boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE id = $1)', tbl) INTO r USING k;
    RETURN r;
END
$$;
CREATE FUNCTION tap_rows(tbl text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
DECLARE
    r text;
BEGIN
    EXECUTE format('SELECT string_agg(format(%L, id, tenant, body, locked), %L ORDER BY id) FROM %I',
                   '%s:%s:%s:%s', ' ', tbl) INTO r;
    RETURN r;
END
$$;

-- the statement a role would run instead of one event
CREATE FUNCTION tap_statement(op text, k text, v jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    present boolean := tap_exists('theirs', k);
BEGIN
    IF op = 'upsert' THEN
        op := CASE WHEN present THEN 'update' ELSE 'insert' END;
    END IF;
    IF op = 'insert' THEN
        IF present THEN RETURN '23505'; END IF;
        INSERT INTO theirs VALUES (k, v->>'tenant', v->>'body', (v->>'locked')::boolean);
        RETURN 'ok';
    END IF;
    IF NOT present THEN RETURN 'P0002'; END IF;
    IF op = 'update' THEN
        UPDATE theirs SET tenant = v->>'tenant', body = v->>'body', locked = (v->>'locked')::boolean
         WHERE id = k;
    ELSE
        DELETE FROM theirs WHERE id = k;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN CASE WHEN n = 1 THEN 'ok' ELSE '42501' END;   -- skipped: hidden
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;

CREATE FUNCTION tap_event(op text, k text, v jsonb) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM state.apply(jsonb_build_object('type', 'note', 'key', k, 'value', v,
                                           'headers', jsonb_build_object('operation', op)), 'rlsdiff');
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;

CREATE TEMP TABLE outcomes (i int, op text, k text, v jsonb, ours text, theirs text);
GRANT ALL ON outcomes TO tap_rls_alice;

SET LOCAL ROLE tap_rls_alice;
DO $$
DECLARE
    op text;
    k text;
    v jsonb;
BEGIN
    FOR i IN 1..600 LOOP
        op := (ARRAY['insert', 'update', 'upsert', 'delete'])[1 + floor(random() * 4)::int];
        k := 'k' || floor(random() * 26)::int;
        v := jsonb_build_object('tenant', (ARRAY['a', 'b', 'c', 'public'])[1 + floor(random() * 4)::int],
                                'body', (ARRAY['x', 'keep', 'bad2', 'y'])[1 + floor(random() * 4)::int],
                                'locked', random() < 0.2);
        INSERT INTO outcomes VALUES (i, op, k, v, tap_event(op, k, v), tap_statement(op, k, v));
    END LOOP;
END
$$;

SELECT is((SELECT count(*) FROM outcomes WHERE ours IS DISTINCT FROM theirs), 0::bigint,
          'every event is accepted or refused as its statement is');
SELECT is((SELECT string_agg(format('#%s %s %s %s: ours %s, SQL %s', i, op, k, v, ours, theirs), E'\n' ORDER BY i)
             FROM (SELECT * FROM outcomes WHERE ours IS DISTINCT FROM theirs ORDER BY i LIMIT 5) f),
          NULL, 'no differing outcome (first five shown)');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE ours = 'ok'), '>=', 60::bigint,
              'the generator has events accepted');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE ours = '42501'), '>=', 60::bigint,
              'and refused by the policies');
SELECT is((SELECT array_agg(DISTINCT ours ORDER BY ours) FROM outcomes),
          ARRAY['23505', '42501', 'P0002', 'ok'], 'every kind of outcome occurs');
SELECT is(tap_rows('ours'), tap_rows('theirs'), 'both tables hold the same rows');
SELECT is((SELECT string_agg(k, ' ' ORDER BY k)
             FROM (SELECT 'k' || i AS k FROM generate_series(0, 25) i) keys
            WHERE state.get('note', k, 'rlsdiff') IS NOT NULL),
          (SELECT string_agg(id, ' ' ORDER BY id) FROM theirs),
          'get sees exactly the rows SELECT sees');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
