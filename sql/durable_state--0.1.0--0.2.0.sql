-- durable_state 0.1.0 -> 0.2.0
-- Entity versions, compare-and-set puts, increments and default TTLs; the
-- roles state_reader / state_writer and per-stream log privileges; the
-- stream id sequence in dumps; the worker merges the txid index's pending
-- list.  Existing document and generated collections get their version
-- column (every entity at version 1).
\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.2.0'" to load this file. \quit

ALTER TABLE state._collections
    ADD COLUMN version_column name,
    ADD COLUMN default_ttl interval CHECK (default_ttl > interval '0');
SELECT pg_catalog.pg_extension_config_dump('state._streams_id_seq', '');

-- the version columns of the collections that exist
DO $$
DECLARE
    c record;
    col name;
BEGIN
    FOR c IN SELECT cc.stream_id, cc.type, cc.relid, cc.kind, cc.schema FROM state._collections cc
              WHERE cc.kind IN ('document', 'generated') LOOP
        IF c.kind = 'document' THEN
            col := 'version';
        ELSE
            col := '_version';
            WHILE (c.schema->'properties') ? col LOOP
                col := '_version_' || (coalesce(substring(col FROM '_(\d+)$')::int, 0) + 1);
            END LOOP;
        END IF;
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                               WHERE a.attrelid = c.relid AND a.attname = col AND NOT a.attisdropped);
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I bigint NOT NULL DEFAULT 1', c.relid, col);
        UPDATE state._collections cc SET version_column = col
         WHERE cc.stream_id = c.stream_id AND cc.type = c.type;
    END LOOP;
END
$$;

CREATE FUNCTION state.get_versioned(type text, key text, stream text DEFAULT 'default')
RETURNS TABLE (value jsonb, version bigint)
AS 'MODULE_PATHNAME', 'ds_get_versioned'
LANGUAGE C STABLE;

DROP FUNCTION state.create_collection(text, text, text, jsonb, regclass, text, text, boolean, boolean, name, boolean);

CREATE FUNCTION state.create_collection(
    name text,
    type text DEFAULT NULL,
    primary_key text DEFAULT 'id',
    schema jsonb DEFAULT NULL,
    table_name regclass DEFAULT NULL,
    stream text DEFAULT 'default',
    mode text DEFAULT 'strict',
    allow_extra boolean DEFAULT false,
    check_old_value boolean DEFAULT false,
    extra_column name DEFAULT NULL,
    assert_formats boolean DEFAULT false,
    version_column name DEFAULT NULL,
    default_ttl interval DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql
-- no pinned search_path: new tables go to the caller's current_schema();
-- every other name below is schema-qualified or a pg_catalog built-in.
AS $$
DECLARE
    sid       integer;
    rel       regclass;
    ckind     text;
    ctype     text := coalesce(create_collection.type, create_collection.name);
    pk_cols   text[];
    relkind   "char";
    cols      text := '';
    prop      record;
    coltype   text;
    req       jsonb;
    extracol  name := create_collection.extra_column;
    vercol    name := create_collection.version_column;
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'collection name must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ctype = '' THEN
        RAISE EXCEPTION 'collection type must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF primary_key IS NULL OR primary_key = '' THEN
        RAISE EXCEPTION 'primary key must be a non-empty member name'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM state._check_mode(mode);
    IF schema IS NOT NULL THEN
        PERFORM state._check_schema(schema);
    END IF;
    IF default_ttl IS NOT NULL AND default_ttl <= interval '0' THEN
        RAISE EXCEPTION 'default_ttl must be positive, not %', default_ttl
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Leave default_ttl NULL for entities that do not expire.';
    END IF;

    IF table_name IS NULL AND current_schema() IS NULL THEN
        RAISE EXCEPTION 'no schema has been selected to create the table in'
            USING ERRCODE = 'invalid_schema_name',
                  HINT = 'Set search_path, or create the table yourself and pass table_name =>.';
    END IF;

    sid := state._ensure_stream(stream);

    IF EXISTS (SELECT 1 FROM state._collections c
               WHERE c.stream_id = sid AND c.type = ctype) THEN
        RAISE EXCEPTION 'stream "%" already has a collection for type "%"', stream, ctype
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Each event type maps to one collection per stream; drop the other collection first.';
    END IF;
    IF EXISTS (SELECT 1 FROM state._collections c
               WHERE c.stream_id = sid AND c.name = create_collection.name) THEN
        RAISE EXCEPTION 'collection "%" already exists in stream "%"', name, stream
            USING ERRCODE = 'duplicate_object';
    END IF;

    IF table_name IS NULL
       AND to_regclass(quote_ident(current_schema()) || '.' || quote_ident(name)) IS NOT NULL THEN
        RAISE EXCEPTION 'relation "%" already exists', name
            USING ERRCODE = 'duplicate_table',
                  HINT = 'Pass table_name => to adopt the existing table.';
    END IF;

    IF table_name IS NOT NULL THEN
        -- adopt an existing table
        rel := table_name;
        ckind := 'adopted';
        SELECT c.relkind INTO relkind FROM pg_class c WHERE c.oid = rel;
        IF relkind <> 'r' THEN
            RAISE EXCEPTION 'cannot adopt "%": it is not an ordinary table', rel
                USING ERRCODE = 'wrong_object_type',
                      HINT = 'Partitioned tables, views and foreign tables are not supported as collections.';
        END IF;
        PERFORM state._check_owner(rel);
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = rel AND a.attname = primary_key
                         AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'table % has no column "%" for the primary key', rel, primary_key
                USING ERRCODE = 'undefined_column',
                      HINT = 'Pass primary_key => the name of the table''s key column.';
        END IF;
        SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO pk_cols
          FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indrelid = rel AND i.indisprimary;
        IF pk_cols IS NULL OR pk_cols <> ARRAY[primary_key] THEN
            RAISE EXCEPTION 'table % must have PRIMARY KEY (%)', rel, primary_key
                USING ERRCODE = 'invalid_table_definition',
                      DETAIL = CASE WHEN pk_cols IS NULL THEN 'The table has no primary key.'
                                    ELSE format('Its primary key is (%s).', array_to_string(pk_cols, ', ')) END,
                      HINT = 'The event key is the entity id: the table needs a single-column primary key on that member.';
        END IF;
        IF extracol IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = rel AND a.attname = extracol AND a.attnum > 0
                  AND NOT a.attisdropped AND a.atttypid = 'jsonb'::regtype) THEN
            RAISE EXCEPTION 'table % has no jsonb column "%"', rel, extracol
                USING ERRCODE = 'undefined_column',
                      HINT = 'extra_column => names a jsonb column of the table that keeps members without a column of their own.';
        END IF;
        IF extracol = primary_key THEN
            RAISE EXCEPTION 'the extra column cannot be the primary key'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF vercol IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = rel AND a.attname = vercol AND a.attnum > 0
                  AND NOT a.attisdropped AND a.atttypid = 'bigint'::regtype
                  AND a.attgenerated = '' AND a.attidentity <> 'a') THEN
            RAISE EXCEPTION 'table % has no plain bigint column "%"', rel, vercol
                USING ERRCODE = 'undefined_column',
                      HINT = 'version_column => names a bigint column of the table that the collection keeps the entity''s version in.';
        END IF;
        IF vercol = primary_key OR vercol = extracol THEN
            RAISE EXCEPTION 'the version column cannot be the primary key or the extra column'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    ELSIF schema IS NOT NULL AND jsonb_typeof(schema) = 'object'
          AND jsonb_typeof(schema->'properties') = 'object' THEN
        -- typed, generated: one column per property
        ckind := 'generated';
        req := coalesce(schema->'required', '[]');
        -- a text key is an opaque id: COLLATE "C" orders it bytewise and
        -- makes every key probe a memcmp (as for document tables)
        IF NOT (schema->'properties') ? primary_key THEN
            cols := format('%I text COLLATE "C" PRIMARY KEY', primary_key);
        END IF;
        -- the extra column: "_extra", or "_extra_N" if a property has the name
        IF extracol IS NULL THEN
            extracol := '_extra';
            WHILE (schema->'properties') ? extracol OR extracol = primary_key LOOP
                extracol := '_extra_' || (coalesce(substring(extracol FROM '_(\d+)$')::int, 0) + 1);
            END LOOP;
        ELSIF (schema->'properties') ? extracol OR extracol = primary_key THEN
            RAISE EXCEPTION 'extra column "%" collides with a property of the schema', extracol
                USING ERRCODE = 'duplicate_column';
        END IF;
        -- the version column: "_version", or "_version_N" likewise
        IF vercol IS NULL THEN
            vercol := '_version';
            WHILE (schema->'properties') ? vercol OR vercol IN (primary_key, extracol) LOOP
                vercol := '_version_' || (coalesce(substring(vercol FROM '_(\d+)$')::int, 0) + 1);
            END LOOP;
        ELSIF (schema->'properties') ? vercol OR vercol IN (primary_key, extracol) THEN
            RAISE EXCEPTION 'version column "%" collides with a property of the schema', vercol
                USING ERRCODE = 'duplicate_column';
        END IF;
        FOR prop IN SELECT p.key, p.value FROM jsonb_each(schema->'properties') p ORDER BY p.key LOOP
            IF cols <> '' THEN cols := cols || ', '; END IF;
            coltype := state._schema_column_type(prop.value);
            cols := cols || format('%I %s', prop.key, coltype);
            IF prop.key = primary_key THEN
                IF coltype = 'text' THEN
                    cols := cols || ' COLLATE "C"';
                END IF;
                cols := cols || ' PRIMARY KEY';
            ELSIF req ? prop.key AND NOT state._schema_allows_null(prop.value) THEN
                cols := cols || ' NOT NULL';
            END IF;
        END LOOP;
        cols := cols || format(', %I jsonb, %I bigint NOT NULL DEFAULT 1', extracol, vercol);
        EXECUTE format('CREATE TABLE %I.%I (%s)', current_schema(), name, cols);
        rel := format('%I.%I', current_schema(), name)::regclass;
    ELSE
        -- document collection: any JSON value per key
        ckind := 'document';
        IF extracol IS NOT NULL THEN
            RAISE EXCEPTION 'a document collection has no extra column'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Its value column keeps the whole value.';
        END IF;
        IF vercol IS NOT NULL AND vercol <> 'version' THEN
            RAISE EXCEPTION 'the version column of a document collection is "version"'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        vercol := 'version';
        -- keys are opaque ids: byte order (COLLATE "C") is their natural
        -- order, and it makes every key probe a memcmp
        EXECUTE format('CREATE TABLE %I.%I (key text COLLATE "C" PRIMARY KEY, value jsonb NOT NULL, '
                       'version bigint NOT NULL DEFAULT 1)',
                       current_schema(), name);
        rel := format('%I.%I', current_schema(), name)::regclass;
    END IF;

    INSERT INTO state._collections (stream_id, name, type, relid, primary_key, schema,
                                    kind, mode, allow_extra, check_old_value, extra_column,
                                    assert_formats, version_column, default_ttl, has_ttl)
    VALUES (sid, name, ctype, rel, primary_key, schema, ckind, mode,
            allow_extra, check_old_value, extracol, coalesce(assert_formats, false),
            vercol, default_ttl, default_ttl IS NOT NULL);
    PERFORM state._catalog_changed();
    RETURN rel;
END
$$;

DROP FUNCTION state.alter_collection(text, text, text, boolean, boolean, jsonb, boolean);

CREATE FUNCTION state.alter_collection(name text, stream text DEFAULT 'default',
                                       mode text DEFAULT NULL,
                                       allow_extra boolean DEFAULT NULL,
                                       check_old_value boolean DEFAULT NULL,
                                       schema jsonb DEFAULT NULL,
                                       assert_formats boolean DEFAULT NULL,
                                       default_ttl interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    rel regclass;
    ctype text;
    bad record;
    err record;
    old_schema jsonb;
    old_assert boolean;
    new_schema jsonb;
    new_assert boolean;
BEGIN
    SELECT c.relid, c.type, c.schema, c.assert_formats
      INTO rel, ctype, old_schema, old_assert
      FROM state._collections c JOIN state._streams s ON s.id = c.stream_id
     WHERE s.name = alter_collection.stream AND c.name = alter_collection.name
       FOR UPDATE OF c;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'collection "%" does not exist in stream "%"', name, stream
            USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM state._check_owner(rel);
    IF mode IS NOT NULL THEN
        PERFORM state._check_mode(mode);
    END IF;
    IF default_ttl < interval '0' THEN
        RAISE EXCEPTION 'default_ttl must be positive (or 0 for none), not %', default_ttl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    new_schema := coalesce(alter_collection.schema, old_schema);
    new_assert := coalesce(alter_collection.assert_formats, old_assert);
    IF alter_collection.schema IS NOT NULL THEN
        PERFORM state._check_schema(alter_collection.schema);
    END IF;
    IF new_schema IS NOT NULL
       AND (alter_collection.schema IS NOT NULL OR (new_assert AND NOT old_assert)) THEN
        -- every stored entity must satisfy the new rules (the table is
        -- locked against writers meanwhile)
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', rel);
        SELECT g.key, g.value INTO bad
          FROM state.get_type(ctype, stream) g
         WHERE NOT state.json_schema_validate(new_schema, g.value, new_assert)
         LIMIT 1;
        IF FOUND THEN
            SELECT e.path, e.keyword, e.message INTO err
              FROM state.json_schema_errors(new_schema, bad.value, new_assert) e LIMIT 1;
            RAISE EXCEPTION 'entity "%" of collection "%" violates the new schema at % (keyword "%"): %',
                            bad.key, name,
                            CASE WHEN err.path = '' THEN 'the top level' ELSE '"' || err.path || '"' END,
                            err.keyword, err.message
                USING ERRCODE = 'check_violation',
                      HINT = 'Fix or remove the entity, or loosen the schema; nothing was changed.';
        END IF;
    END IF;
    UPDATE state._collections c
       SET mode = coalesce(alter_collection.mode, c.mode),
           allow_extra = coalesce(alter_collection.allow_extra, c.allow_extra),
           check_old_value = coalesce(alter_collection.check_old_value, c.check_old_value),
           schema = new_schema,
           assert_formats = new_assert,
           -- 0 turns the default TTL off; TTLs already set stay
           default_ttl = CASE WHEN alter_collection.default_ttl IS NULL THEN c.default_ttl
                              WHEN alter_collection.default_ttl = interval '0' THEN NULL
                              ELSE alter_collection.default_ttl END,
           has_ttl = c.has_ttl OR coalesce(alter_collection.default_ttl > interval '0', false)
      FROM state._streams s
     WHERE s.id = c.stream_id AND s.name = alter_collection.stream
       AND c.name = alter_collection.name;
    PERFORM state._catalog_changed();
END
$$;

CREATE FUNCTION state._can_read_stream(stream_id integer) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog
RETURN NOT EXISTS (SELECT 1 FROM state._collections c
                    WHERE c.stream_id = _can_read_stream.stream_id
                      AND (NOT has_table_privilege(c.relid, 'SELECT')
                           OR row_security_active(c.relid)));

CREATE FUNCTION state._readable_stream_id(stream text) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    sid integer := state._stream_id(stream);
BEGIN
    IF NOT state._can_read_stream(sid) THEN
        RAISE EXCEPTION 'permission denied for the log of stream "%"', stream
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Reading a stream''s log needs SELECT on every collection table of the stream, with no row-level security applying to you.',
                  HINT = 'Grant SELECT on the stream''s tables, or keep tenants in separate streams.';
    END IF;
    RETURN sid;
END
$$;

ALTER TABLE state.log ENABLE ROW LEVEL SECURITY;
CREATE POLICY log_readable_streams ON state.log FOR SELECT
    USING (state._can_read_stream(stream_id));

CREATE OR REPLACE FUNCTION state.tail(stream text DEFAULT 'default') RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    t bigint;
BEGIN
    RETURN state.format_offset(state._tail(state._readable_stream_id(stream)));
END
$$;

CREATE OR REPLACE FUNCTION state.changes(stream text DEFAULT 'default', since text DEFAULT '-1',
                              max_events integer DEFAULT 1000)
RETURNS TABLE ("offset" text, event jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    s         state._streams;
    since_seq bigint;
BEGIN
    SELECT * INTO s FROM state._streams st WHERE st.id = state._readable_stream_id(stream);
    IF max_events IS NULL OR max_events < 0 THEN
        RAISE EXCEPTION 'max_events must be zero or positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    since_seq := state._parse_offset(since, CASE WHEN since = 'now' THEN state._tail(s.id) END);
    IF since_seq < s.retained_from - 1 THEN
        RAISE EXCEPTION 'offset % of stream "%" is no longer retained', since, stream
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The log of this stream starts after offset %s.',
                                  state.format_offset(s.retained_from - 1)),
                  HINT = 'Resync from state.snapshot(), then read changes after its snapshot-end offset.';
    END IF;
    RETURN QUERY
        SELECT state.format_offset(l.first_seq + e.ord - 1),
               jsonb_set(e.ev, '{headers,offset}',
                         to_jsonb(state.format_offset(l.first_seq + e.ord - 1)))
          FROM state.log l
         CROSS JOIN LATERAL unnest(l.events) WITH ORDINALITY AS e(ev, ord)
         WHERE l.stream_id = s.id AND l.last_seq > since_seq
           AND l.first_seq + e.ord - 1 > since_seq
         ORDER BY l.last_seq, e.ord
         LIMIT max_events;
END
$$;

CREATE OR REPLACE FUNCTION state.snapshot(stream text DEFAULT 'default') RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM state._readable_stream_id(stream);   -- unknown or not readable: a clear error
    RETURN QUERY SELECT * FROM state._snapshot(stream);
END
$$;

CREATE OR REPLACE VIEW state.collections AS
SELECT c.name, c.type, s.name AS stream, c.relid AS table_name, c.primary_key,
       c.kind, c.mode, c.allow_extra, c.check_old_value, c.assert_formats,
       c.extra_column, c.schema, c.created_at, c.version_column, c.default_ttl
  FROM state._collections c
  JOIN state._streams s ON s.id = c.stream_id;

ALTER VIEW state.log_events SET (security_invoker = true);

CREATE OR REPLACE FUNCTION state._maintain(txid_retention integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    s record;
    cutoff bigint;
    pruned bigint;
BEGIN
    PERFORM state._expire();
    DELETE FROM state._txids
     WHERE applied_at < now() - make_interval(secs => txid_retention);
    -- recent txids into the index proper (see state._txids)
    PERFORM gin_clean_pending_list('state._txids_hashes_idx'::regclass);
    FOR s IN SELECT st.id, st.retention_age, st.retention_events FROM state._streams st
              WHERE st.retention_age IS NOT NULL OR st.retention_events IS NOT NULL LOOP
        cutoff := 0;
        IF s.retention_events IS NOT NULL THEN
            cutoff := greatest(cutoff, state._tail(s.id) - s.retention_events);
        END IF;
        IF s.retention_age IS NOT NULL THEN
            cutoff := greatest(cutoff, coalesce((SELECT max(l.last_seq) FROM state.log l
                                                  WHERE l.stream_id = s.id
                                                    AND l.applied_at < now() - s.retention_age), 0));
        END IF;
        CONTINUE WHEN cutoff = 0 OR NOT EXISTS (SELECT 1 FROM state.log l
                                                 WHERE l.stream_id = s.id AND l.last_seq <= cutoff);
        PERFORM 1 FROM state._streams st WHERE st.id = s.id FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        WITH d AS (DELETE FROM state.log l WHERE l.stream_id = s.id AND l.last_seq <= cutoff
                   RETURNING l.last_seq)
        SELECT max(d.last_seq) INTO pruned FROM d;
        UPDATE state._streams st
           SET retained_from = greatest(st.retained_from, pruned + 1),
               tail = greatest(st.tail, pruned)
         WHERE st.id = s.id;
    END LOOP;
END
$$;

CREATE FUNCTION state._lock_stream(stream text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ds_lock_stream'
LANGUAGE C VOLATILE STRICT;

DROP FUNCTION state.put(text, text, jsonb, interval, text);

CREATE FUNCTION state.put(type text, key text, value jsonb, ttl interval DEFAULT NULL,
                          stream text DEFAULT 'default', expected_version bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    off text;
    cur bigint;
BEGIN
    IF ttl IS NOT NULL AND ttl <= interval '0' THEN
        RAISE EXCEPTION 'ttl must be positive, not %', ttl
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Leave ttl NULL for an entity that does not expire.';
    END IF;
    IF value IS NULL THEN
        RAISE EXCEPTION 'value must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use state.remove() to delete an entity.';
    END IF;
    IF expected_version IS NOT NULL THEN
        IF expected_version < 0 THEN
            RAISE EXCEPTION 'expected_version must be 0 (absent) or a version, not %', expected_version
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- no batch of the stream commits between this read and the write
        PERFORM state._lock_stream(put.stream);
        cur := coalesce((SELECT g.version FROM state.get_versioned(put.type, put.key, put.stream) g), 0);
        IF cur <> expected_version THEN
            RAISE EXCEPTION 'version conflict on "%" of type "%": expected version %, found %',
                            put.key, put.type, expected_version, cur
                USING ERRCODE = 'serialization_failure',
                      DETAIL = CASE WHEN cur = 0 THEN 'The entity does not exist.'
                                    ELSE format('The entity is at version %s.', cur) END,
                      HINT = 'Read the entity again (state.get_versioned) and retry with its version.';
        END IF;
    END IF;
    SELECT a.last_offset INTO off
      FROM state.apply(jsonb_build_object('type', put.type, 'key', put.key, 'value', put.value,
                                          'headers', jsonb_build_object('operation', 'upsert')),
                       put.stream) a;
    -- the batch ended any earlier TTL of the entity (or set the default one)
    IF ttl IS NOT NULL THEN
        PERFORM state._ttl_set(put.stream, put.type, put.key, clock_timestamp() + ttl);
    END IF;
    RETURN off;
END
$$;

CREATE FUNCTION state.increment(type text, key text, member text, by numeric DEFAULT 1,
                                stream text DEFAULT 'default')
RETURNS numeric
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    v jsonb;
    cur jsonb;
    n numeric;
BEGIN
    IF member IS NULL OR by IS NULL THEN
        RAISE EXCEPTION 'member and by must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF member = '' THEN
        RAISE EXCEPTION 'member must be a non-empty name'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM state._lock_stream(increment.stream);
    v := state.get(increment.type, increment.key, increment.stream);
    IF v IS NULL THEN
        v := '{}';
    ELSIF jsonb_typeof(v) <> 'object' THEN
        RAISE EXCEPTION 'cannot increment "%" of "%" of type "%": the value is %, not an object',
                        member, key, type, jsonb_typeof(v)
            USING ERRCODE = 'wrong_object_type';
    END IF;
    cur := v -> member;
    IF cur IS NULL OR cur = 'null' THEN
        n := by;
    ELSIF jsonb_typeof(cur) = 'number' THEN
        n := cur::numeric + by;
    ELSE
        RAISE EXCEPTION 'cannot increment "%" of "%" of type "%": it is %, not a number',
                        member, key, type, jsonb_typeof(cur)
            USING ERRCODE = 'wrong_object_type';
    END IF;
    PERFORM state.apply(jsonb_build_object('type', increment.type, 'key', increment.key,
                                           'value', v || jsonb_build_object(member, n),
                                           'headers', jsonb_build_object('operation', 'upsert')),
                        increment.stream);
    RETURN n;
END
$$;

-- ---------------------------------------------------------------------------
-- Roles (SPEC §5): state_reader reads (get, changes, snapshot, await_txid);
-- state_writer also writes (apply, put, remove, increment, publish).  Both
-- still need privileges on the collection tables: every function runs with
-- the caller's rights, and the log shows a role only the streams whose
-- tables it may read.  Roles are cluster-wide: created once, kept on DROP
-- EXTENSION.
-- ---------------------------------------------------------------------------
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'state_reader') THEN
        CREATE ROLE state_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'state_writer') THEN
        CREATE ROLE state_writer NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('state_writer', 'state_reader', 'MEMBER') THEN
        GRANT state_reader TO state_writer;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA state TO state_reader;
GRANT SELECT ON state._streams, state._collections, state.log, state._txids,
                state.log_events, state.collections, state.streams, state.stats
   TO state_reader;
-- writing functions: not for PUBLIC
REVOKE EXECUTE ON FUNCTION state.apply(jsonb, text, text), state.apply_text(text, text, text),
                          state.put(text, text, jsonb, interval, text, bigint),
                          state.remove(text, text, text),
                          state.increment(text, text, text, numeric, text),
                          state.publish(text, jsonb, text), state._lock_stream(text),
                          state._ttl_set(text, text, text, timestamptz)
   FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state.apply(jsonb, text, text), state.apply_text(text, text, text),
                         state.put(text, text, jsonb, interval, text, bigint),
                         state.remove(text, text, text),
                         state.increment(text, text, text, numeric, text),
                         state.publish(text, jsonb, text), state._lock_stream(text),
                         state._ttl_set(text, text, text, timestamptz)
   TO state_writer;
