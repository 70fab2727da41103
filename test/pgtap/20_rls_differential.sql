-- Row-level security, differentially: random events applied by a role under
-- policies (sub-selects, permissive and restrictive, per command, a WITH
-- CHECK different from USING) must be accepted or refused exactly as the
-- equivalent INSERT / UPDATE ... WHERE / DELETE ... WHERE statements on a
-- twin table with the same policies, and leave the same rows; get must see
-- exactly the rows a SELECT sees, and folding the role's filtered
-- state.changes from the start must give what get_type shows it.  Twice: with policies that have
-- sub-selects (evaluated as a prepared query) and with policies that have
-- none (compiled into an expression).  Mapping (README, "Row-level security"):
-- an UPDATE or DELETE that skips a stored row is a refused event (42501);
-- an insert of a stored key is 23505 first; a missing key is P0002 (no_data_found).

SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS durable_state;

SELECT plan(19);

CREATE ROLE tap_rls_alice IN ROLE state_writer;
CREATE TABLE members (role name, tenant text);
INSERT INTO members VALUES ('tap_rls_alice', 'a'), ('tap_rls_alice', 'c');
GRANT SELECT ON members TO tap_rls_alice;
SET tap.tenants = 'a,c';

-- twin tables ours_X (a collection, stream X) and theirs_X with the same
-- policies, "mine" being the test of a row's tenant
CREATE FUNCTION tap_twins(variant text, mine text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    EXECUTE format('CREATE TABLE %I (id text PRIMARY KEY, tenant text NOT NULL, body text,
                                     locked boolean NOT NULL DEFAULT false)', 'ours_' || variant);
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING ALL)', 'theirs_' || variant, 'ours_' || variant);
    PERFORM state.create_collection('ours_' || variant, 'note',
                                    table_name => ('ours_' || variant)::regclass, stream => variant);
    FOREACH t IN ARRAY ARRAY['ours_' || variant, 'theirs_' || variant] LOOP
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
SELECT lives_ok($$SELECT tap_twins('sub', 'tenant IN (SELECT m.tenant FROM members m WHERE m.role = current_user)')$$,
                'twins whose policies have sub-selects');
SELECT lives_ok($$SELECT tap_twins('expr', 'tenant = ANY (string_to_array(current_setting(''tap.tenants''), '',''))')$$,
                'twins whose policies have none');

-- the same starting rows in both, written by the owner
SELECT setseed(0.42);
CREATE TEMP TABLE seed AS
SELECT 'k' || i AS id,
       (ARRAY['a', 'b', 'c', 'public'])[1 + floor(random() * 4)::int] AS tenant,
       (ARRAY['x', 'keep', 'bad1', NULL])[1 + floor(random() * 4)::int] AS body,
       random() < 0.25 AS locked
  FROM generate_series(0, 19) i;
CREATE FUNCTION tap_seed(variant text) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO %I SELECT id, tenant, body, locked FROM seed', 'theirs_' || variant);
    RETURN (SELECT applied FROM state.apply(
              (SELECT jsonb_agg(jsonb_build_object('type', 'note', 'key', id,
                                                   'value', jsonb_build_object('tenant', tenant, 'body', body, 'locked', locked),
                                                   'headers', jsonb_build_object('operation', 'insert')))
                 FROM seed), variant));
END
$$;
SELECT is(tap_seed('sub'), 20::bigint, 'the owner seeds 20 rows (sub-selects)');
SELECT is(tap_seed('expr'), 20::bigint, 'the owner seeds 20 rows (expressions)');

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
CREATE FUNCTION tap_statement(tbl text, op text, k text, v jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    present boolean := tap_exists(tbl, k);
BEGIN
    IF op = 'upsert' THEN
        op := CASE WHEN present THEN 'update' ELSE 'insert' END;
    END IF;
    IF op = 'insert' THEN
        IF present THEN RETURN '23505'; END IF;
        EXECUTE format('INSERT INTO %I VALUES ($1, $2, $3, $4)', tbl)
          USING k, v->>'tenant', v->>'body', (v->>'locked')::boolean;
        RETURN 'ok';
    END IF;
    IF NOT present THEN RETURN 'P0002'; END IF;
    IF op = 'update' THEN
        EXECUTE format('UPDATE %I SET tenant = $2, body = $3, locked = $4 WHERE id = $1', tbl)
          USING k, v->>'tenant', v->>'body', (v->>'locked')::boolean;
    ELSE
        EXECUTE format('DELETE FROM %I WHERE id = $1', tbl) USING k;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN CASE WHEN n = 1 THEN 'ok' ELSE '42501' END;   -- skipped: hidden
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;

CREATE FUNCTION tap_event(stream text, op text, k text, v jsonb) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM state.apply(jsonb_build_object('type', 'note', 'key', k, 'value', v,
                                           'headers', jsonb_build_object('operation', op)), stream);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;

CREATE TEMP TABLE outcomes (variant text, i int, op text, k text, v jsonb, ours text, theirs text);
GRANT ALL ON outcomes TO tap_rls_alice;

CREATE FUNCTION tap_visible(variant text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    r text[];
BEGIN
    EXECUTE format('SELECT array_agg(id ORDER BY id) FROM %I', 'theirs_' || variant) INTO r;
    RETURN ARRAY[(SELECT string_agg(k, ' ' ORDER BY k)
                    FROM (SELECT 'k' || i AS k FROM generate_series(0, 25) i) keys
                   WHERE state.get('note', k, variant) IS NOT NULL),
                 array_to_string(r, ' ')];
END
$$;

-- the role's fold of its filtered changes, and its view of the table (a
-- typed table renders a null column as no member)
CREATE FUNCTION tap_fold(variant text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT coalesce(jsonb_object_agg(key, jsonb_strip_nulls(value)) FILTER (WHERE op <> 'delete'), '{}')
      FROM (SELECT DISTINCT ON (event->>'key') event->>'key' AS key,
                   event->'headers'->>'operation' AS op, event->'value' AS value
              FROM state.changes(variant, '-1', 1000000)
             WHERE event ? 'type'
             ORDER BY event->>'key', "offset" DESC) l
$$;
CREATE FUNCTION tap_view(variant text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT coalesce(jsonb_object_agg(key, value - 'id'), '{}') FROM state.get_type('note', variant)
$$;
SET LOCAL ROLE tap_rls_alice;
DO $$
DECLARE
    op text;
    k text;
    v jsonb;
    variant text;
BEGIN
    FOREACH variant IN ARRAY ARRAY['sub', 'expr'] LOOP
        FOR i IN 1..500 LOOP
            op := (ARRAY['insert', 'update', 'upsert', 'delete'])[1 + floor(random() * 4)::int];
            k := 'k' || floor(random() * 26)::int;
            v := jsonb_build_object('tenant', (ARRAY['a', 'b', 'c', 'public'])[1 + floor(random() * 4)::int],
                                    'body', (ARRAY['x', 'keep', 'bad2', 'y'])[1 + floor(random() * 4)::int],
                                    'locked', random() < 0.2);
            INSERT INTO outcomes VALUES (variant, i, op, k, v, tap_event(variant, op, k, v),
                                         tap_statement('theirs_' || variant, op, k, v));
        END LOOP;
    END LOOP;
END
$$;

SELECT is((SELECT count(*) FROM outcomes o WHERE o.variant = var AND ours IS DISTINCT FROM theirs), 0::bigint,
          var || ': every event is accepted or refused as its statement is')
  FROM unnest(ARRAY['sub', 'expr']) var;
SELECT is((SELECT string_agg(format('#%s %s %s %s: ours %s, SQL %s', i, op, k, v, ours, theirs), E'\n' ORDER BY i)
             FROM (SELECT * FROM outcomes o WHERE o.variant = var AND ours IS DISTINCT FROM theirs ORDER BY i LIMIT 5) f),
          NULL, var || ': no differing outcome (first five shown)')
  FROM unnest(ARRAY['sub', 'expr']) var;
SELECT cmp_ok((SELECT count(*) FROM outcomes o WHERE o.variant = var AND ours = 'ok'), '>=', 50::bigint,
              var || ': the generator has events accepted')
  FROM unnest(ARRAY['sub', 'expr']) var;
SELECT is((SELECT array_agg(DISTINCT ours ORDER BY ours) FROM outcomes o WHERE o.variant = var),
          ARRAY['23505', '42501', 'P0002', 'ok'], var || ': every kind of outcome occurs, refusals by policy too')
  FROM unnest(ARRAY['sub', 'expr']) var;
SELECT is(tap_rows('ours_' || var), tap_rows('theirs_' || var), var || ': both tables hold the same rows')
  FROM unnest(ARRAY['sub', 'expr']) var;
SELECT is((tap_visible(var))[1], (tap_visible(var))[2], var || ': get sees exactly the rows SELECT sees')
  FROM unnest(ARRAY['sub', 'expr']) var;
SELECT is(tap_fold(var), tap_view(var), var || ': folding its filtered changes gives what it sees')
  FROM unnest(ARRAY['sub', 'expr']) var;
RESET ROLE;
SELECT is((SELECT count(*) FROM outcomes), 1000::bigint, '500 events for each variant');

SELECT * FROM finish();
ROLLBACK;
