-- durable_state 0.3.0: install script
\echo Use "CREATE EXTENSION durable_state" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Catalog.  Internal tables start with an underscore; the public surface is
-- the functions and views below.
-- ---------------------------------------------------------------------------

CREATE TABLE state._streams (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL CHECK (name <> ''),
    -- The tail is the highest seq in state.log; this column is only its
    -- floor, for when retention has pruned the whole log.  Keeping the tail
    -- out of this row means a batch only locks the row (no new row version
    -- per batch), so many batches in one transaction stay cheap.
    tail            bigint NOT NULL DEFAULT 0,
    retained_from   bigint NOT NULL DEFAULT 1,      -- first seq still in state.log
    source_offset   text,                           -- last external offset applied
    in_snapshot     boolean NOT NULL DEFAULT false,
    -- retention (state.set_retention): the worker prunes whole log segments
    -- older than retention_age or beyond the newest retention_events
    retention_age    interval CHECK (retention_age > '0'),
    retention_events bigint CHECK (retention_events > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz,
    CONSTRAINT _streams_name_key UNIQUE (name)
);

CREATE TABLE state._collections (
    stream_id       integer NOT NULL REFERENCES state._streams(id),
    name            text NOT NULL CHECK (name <> ''),
    type            text NOT NULL CHECK (type <> ''),
    relid           regclass NOT NULL,
    primary_key     text NOT NULL CHECK (primary_key <> ''),
    schema          jsonb,
    kind            text NOT NULL CHECK (kind IN ('document', 'adopted', 'generated')),
    mode            text NOT NULL CHECK (mode IN ('strict', 'lenient')),
    allow_extra     boolean NOT NULL DEFAULT false,
    check_old_value boolean NOT NULL DEFAULT false,
    -- "format" is an assertion (date-time, date, time, uuid, email), not
    -- only an annotation, when checking values against the schema
    assert_formats  boolean NOT NULL DEFAULT false,
    -- some entity was put with a TTL: reads and batches check state._expiry
    has_ttl         boolean NOT NULL DEFAULT false,
    -- a jsonb column of the table that keeps what typed columns cannot:
    -- members without a column and the exact JSON of members whose column
    -- type would re-render them (see README, "Round trips")
    extra_column    name,
    -- a bigint column counting the entity's changes (1 when inserted, +1 on
    -- every update), or NULL: state.get_versioned and put's expected_version
    version_column  name,
    -- every write of an entity gives it this TTL (state.put may override)
    default_ttl     interval CHECK (default_ttl > interval '0'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, type),
    UNIQUE (stream_id, name)
);

-- The durable change log.  Events are stored in segments: one row holds a
-- run of consecutive events of one batch (up to 1000), event i of the row
-- having seq first_seq + i - 1.  Writing one row per segment instead of one
-- per event keeps the log's cost to a few percent of the apply (see bench/);
-- state.log_events and state.changes() present it one event per row.
-- Seqs are assigned under the stream's row lock, which is held to commit,
-- so seq order is commit order within a stream.
CREATE TABLE state.log (
    stream_id   integer NOT NULL,
    first_seq   bigint NOT NULL,
    last_seq    bigint NOT NULL,
    events      jsonb[] NOT NULL,
    applied_at  timestamptz NOT NULL,
    -- for collections whose table has row-level security enabled, each
    -- event's row before and after it, [old, new] (NULL for other events;
    -- the column NULL if the segment has none): roles under the policies
    -- follow the log through them (state.changes, src/rls.c)
    images      jsonb[],
    -- last_seq = first_seq + cardinality(events) - 1, by construction (a
    -- CHECK here would be re-planned in every batch)
    PRIMARY KEY (stream_id, last_seq)
);
-- lz4 where the server has it: segments compress well and cheaply
DO $$
BEGIN
    ALTER TABLE state.log ALTER COLUMN events SET COMPRESSION lz4,
                          ALTER COLUMN images SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;
END
$$;

SELECT pg_catalog.pg_extension_config_dump('state._streams', '');
-- and its id sequence: a restored database must not hand out ids again
SELECT pg_catalog.pg_extension_config_dump('state._streams_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('state._collections', '');
SELECT pg_catalog.pg_extension_config_dump('state.log', '');

-- The txids of each batch that carried any, written in the batch's own
-- transaction: a txid is committed once a row naming it is visible.  They
-- are kept as 64-bit hashes (the txids themselves are in the log): a GIN
-- index over bigint[] costs a fraction of one over text[] on insert, which
-- matters for batches with a txid per event.  New entries go to the GIN
-- pending list (a batch does not wait for 100k index insertions); the
-- worker merges it into the index every maintenance interval, so that a
-- look-up never reads through more than about a second of recent txids.
-- state.await_txid /
-- state.txid_status find them through it; the worker prunes rows older
-- than durable_state.txid_retention.
CREATE TABLE state._txids (
    stream_id   integer NOT NULL,
    last_seq    bigint NOT NULL,
    hashes      bigint[] NOT NULL,
    applied_at  timestamptz NOT NULL
);
CREATE INDEX _txids_hashes_idx ON state._txids USING gin (hashes);
CREATE INDEX _txids_applied_at_idx ON state._txids USING brin (applied_at);
SELECT pg_catalog.pg_extension_config_dump('state._txids', '');

-- Entities put with a TTL (state.put): hidden from reads once expired,
-- deleted by the worker with a logged delete event (state._expire).
CREATE TABLE state._expiry (
    stream_id   integer NOT NULL,
    type        text NOT NULL,
    key         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (stream_id, type, key)
);
CREATE INDEX _expiry_expires_at_idx ON state._expiry (expires_at);
SELECT pg_catalog.pg_extension_config_dump('state._expiry', '');

-- ---------------------------------------------------------------------------
-- Offsets: 20-digit zero-padded decimal seq numbers, so that byte order is
-- numeric order.  '-1' means "from the beginning", 'now' "from the tail".
-- ---------------------------------------------------------------------------

CREATE FUNCTION state.format_offset(seq bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN lpad(seq::text, 20, '0');

-- The tail seq of a stream, as this statement's snapshot sees it.
-- SECURITY DEFINER (reviewed): state.log's policy hides the rows of a
-- stream from roles that may not read its log, yet a snapshot (open to
-- them under row-level security) and state.streams must show its true
-- tail.  It returns one number per stream, which state.streams shows every
-- reader anyway; search_path is pinned.
CREATE FUNCTION state._tail(stream_id integer) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog
RETURN greatest((SELECT s.tail FROM state._streams s WHERE s.id = _tail.stream_id),
                (SELECT max(l.last_seq) FROM state.log l WHERE l.stream_id = _tail.stream_id));

CREATE FUNCTION state._parse_offset(off text, tail bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
BEGIN
    IF off IS NULL OR off = '-1' THEN
        RETURN 0;
    ELSIF off = 'now' THEN
        RETURN tail;
    ELSIF off ~ '^[0-9]{20}$' AND off <= '09223372036854775807' THEN
        RETURN off::bigint;
    END IF;
    RAISE EXCEPTION 'invalid offset "%"', off
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'Offsets are 20-digit strings returned by state.changes() and state.tail().',
              HINT = 'Use ''-1'' to read from the beginning or ''now'' to read from the tail.';
END
$$;

-- ---------------------------------------------------------------------------
-- C entry points
-- ---------------------------------------------------------------------------

CREATE FUNCTION state.apply(events jsonb, stream text DEFAULT 'default',
                            source_offset text DEFAULT NULL)
RETURNS TABLE (applied bigint, skipped bigint, last_offset text)
AS 'MODULE_PATHNAME', 'ds_apply'
LANGUAGE C VOLATILE;

CREATE FUNCTION state.apply_text(events text, stream text DEFAULT 'default',
                                 source_offset text DEFAULT NULL)
RETURNS TABLE (applied bigint, skipped bigint, last_offset text)
AS 'MODULE_PATHNAME', 'ds_apply_text'
LANGUAGE C VOLATILE;

CREATE FUNCTION state.get(type text, key text, stream text DEFAULT 'default')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'ds_get'
LANGUAGE C STABLE;

-- The value with its version (see version_column); no row if absent.
CREATE FUNCTION state.get_versioned(type text, key text, stream text DEFAULT 'default')
RETURNS TABLE (value jsonb, version bigint)
AS 'MODULE_PATHNAME', 'ds_get_versioned'
LANGUAGE C STABLE;

CREATE FUNCTION state.get_many(type text, keys text[], stream text DEFAULT 'default')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'ds_get_many'
LANGUAGE C STABLE;

CREATE FUNCTION state.get_type(type text, stream text DEFAULT 'default')
RETURNS TABLE (key text, value jsonb)
AS 'MODULE_PATHNAME', 'ds_get_type'
LANGUAGE C STABLE;

-- JSON Schema (draft 2020-12 by default, draft-07 by $schema), compiled once
-- per backend and cached.  assert_formats makes date-time, date, time, uuid
-- and email formats assertions instead of annotations.
CREATE FUNCTION state.json_schema_validate(schema jsonb, value jsonb,
                                           assert_formats boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ds_json_schema_validate'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED;

CREATE FUNCTION state.json_schema_errors(schema jsonb, value jsonb,
                                         assert_formats boolean DEFAULT false)
RETURNS TABLE (path text, keyword text, message text)
AS 'MODULE_PATHNAME', 'ds_json_schema_errors'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED;

-- A document schemas may $ref by its URI, for this session.  (The functions
-- above are parallel restricted: workers would not see these documents.)
CREATE FUNCTION state.json_schema_register(uri text, document jsonb) RETURNS void
AS 'MODULE_PATHNAME', 'ds_json_schema_register'
LANGUAGE C STRICT VOLATILE;

-- Sends a relcache invalidation for state._collections so every backend
-- drops its cached collection metadata when the transaction commits.
CREATE FUNCTION state._catalog_changed() RETURNS void
AS 'MODULE_PATHNAME', 'ds_catalog_changed'
LANGUAGE C VOLATILE;

-- ---------------------------------------------------------------------------
-- Collections
-- ---------------------------------------------------------------------------

CREATE FUNCTION state._ensure_stream(stream text) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    sid integer;
BEGIN
    IF stream IS NULL OR stream = '' THEN
        RAISE EXCEPTION 'stream name must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT id INTO sid FROM state._streams WHERE name = stream;
    IF NOT FOUND THEN
        INSERT INTO state._streams (name) VALUES (stream)
            ON CONFLICT (name) DO NOTHING
            RETURNING id INTO sid;
        IF sid IS NULL THEN
            SELECT id INTO sid FROM state._streams WHERE name = stream;
        END IF;
    END IF;
    RETURN sid;
END
$$;

CREATE FUNCTION state._stream_id(stream text) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    sid integer;
BEGIN
    SELECT id INTO sid FROM state._streams WHERE name = stream;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stream "%" does not exist', stream
            USING ERRCODE = 'undefined_object',
                  HINT = 'A stream is created by the first state.create_collection() that names it.';
    END IF;
    RETURN sid;
END
$$;

-- Maps a JSON Schema property to a column type for generated tables.
CREATE FUNCTION state._schema_column_type(prop jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
DECLARE
    t text;
BEGIN
    -- "type": "x", or a nullable ["x", "null"] (as Zod and TypeBox emit)
    IF jsonb_typeof(prop->'type') = 'string' THEN
        t := prop->>'type';
    ELSIF jsonb_typeof(prop->'type') = 'array' AND jsonb_array_length(prop->'type') = 2
          AND prop->'type' ? 'null' THEN
        SELECT x INTO t FROM jsonb_array_elements_text(prop->'type') x WHERE x <> 'null';
    END IF;
    IF t = 'string' THEN
        RETURN CASE prop->>'format'
                   WHEN 'date-time' THEN 'timestamptz'
                   WHEN 'uuid' THEN 'uuid'
                   ELSE 'text' END;
    ELSIF t = 'integer' THEN
        RETURN 'bigint';
    ELSIF t = 'number' THEN
        RETURN 'numeric';
    ELSIF t = 'boolean' THEN
        RETURN 'boolean';
    END IF;
    -- objects, arrays, unions and untyped properties keep their JSON form
    RETURN 'jsonb';
END
$$;

-- Can a property's value be JSON null?  (Then "required" is no NOT NULL.)
CREATE FUNCTION state._schema_allows_null(prop jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog
RETURN CASE jsonb_typeof(prop->'type')
           WHEN 'string' THEN prop->>'type' = 'null'
           WHEN 'array' THEN prop->'type' ? 'null'
           ELSE true END;

-- Collection DDL needs ownership of the table (as ALTER TABLE would).
CREATE FUNCTION state._check_owner(rel regclass) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = rel)
       AND NOT pg_has_role((SELECT relowner FROM pg_class WHERE oid = rel), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', rel
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

CREATE FUNCTION state._check_mode(mode text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
BEGIN
    IF mode IS NULL OR mode NOT IN ('strict', 'lenient') THEN
        RAISE EXCEPTION 'invalid collection mode "%"', mode
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The mode is ''strict'' or ''lenient''.';
    END IF;
END
$$;

CREATE FUNCTION state._check_schema(schema jsonb) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
BEGIN
    IF jsonb_typeof(schema) NOT IN ('object', 'boolean') THEN
        RAISE EXCEPTION 'collection schema must be a JSON Schema object or boolean'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- compiling it raises 22023, naming the keyword, if it is invalid
    PERFORM state.json_schema_validate(schema, 'null'::jsonb);
END
$$;

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

CREATE FUNCTION state.drop_collection(name text, stream text DEFAULT 'default',
                                      drop_table boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    rel regclass;
BEGIN
    DELETE FROM state._collections c
     USING state._streams s
     WHERE c.stream_id = s.id AND s.name = drop_collection.stream
       AND c.name = drop_collection.name
    RETURNING c.relid INTO rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'collection "%" does not exist in stream "%"', name, stream
            USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM state._check_owner(rel);
    PERFORM state._catalog_changed();
    -- the table may already be gone (dropped behind the collection's back)
    IF drop_table AND EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = rel) THEN
        EXECUTE format('DROP TABLE %s', rel);
    END IF;
END
$$;

-- When a collection's table is dropped, its collection goes with it.
-- SECURITY DEFINER (reviewed): whoever drops the table may have no rights on
-- the extension's catalog; the function only deletes catalog rows of
-- relations that this very command dropped, and its search_path is pinned.
CREATE FUNCTION state._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
AS $$
BEGIN
    DELETE FROM state._collections c
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.objsubid = 0
       AND d.objid = c.relid::pg_catalog.oid;
    IF FOUND THEN
        PERFORM state._catalog_changed();
    END IF;
END
$$;
REVOKE ALL ON FUNCTION state._on_sql_drop() FROM PUBLIC;

CREATE EVENT TRIGGER durable_state_sql_drop ON sql_drop
    EXECUTE FUNCTION state._on_sql_drop();

-- ---------------------------------------------------------------------------
-- The log and snapshots
-- ---------------------------------------------------------------------------

-- Who may read a stream's log: whoever may read every collection table of
-- the stream, with no row-level security applying to them there (the log
-- holds every row's events, so it may show nothing a policy would hide).
-- Tenants that must not see each other's events use separate streams.
-- state.log's policy and state.changes / tail use it.  Snapshots, get and
-- apply go through the tables and their policies instead (see src/rls.c).
CREATE FUNCTION state._can_read_stream(stream_id integer) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog
RETURN NOT EXISTS (SELECT 1 FROM state._collections c
                    WHERE c.stream_id = _can_read_stream.stream_id
                      AND (NOT has_table_privilege(c.relid, 'SELECT')
                           OR row_security_active(c.relid)));

-- The stream's id if the caller may read its log; else a clear error.
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

CREATE FUNCTION state.tail(stream text DEFAULT 'default') RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    t bigint;
BEGIN
    RETURN state.format_offset(state._tail(state._readable_stream_id(stream)));
END
$$;

-- The events after since that the caller may see, for a caller under the
-- row-level security of a collection of the stream (state.changes).
CREATE FUNCTION state._changes_filtered(stream text, since bigint, max_events integer)
RETURNS TABLE (seq bigint, event jsonb, verdict text)
AS 'MODULE_PATHNAME', 'ds_changes_filtered'
LANGUAGE C STABLE STRICT;

-- A role that may read the stream's log gets its events as they are.  A
-- role under the row-level security of a collection of the stream (with
-- SELECT on every collection table) gets the events of the rows its SELECT
-- policies let it see: an event whose row it sees after it; as an insert
-- (no old_value) if it could not see the row before; a delete when the row
-- left its view; none of the rest (offsets then have gaps).  Folding them
-- from a snapshot gives what state.get_type shows the role.
CREATE FUNCTION state.changes(stream text DEFAULT 'default', since text DEFAULT '-1',
                              max_events integer DEFAULT 1000)
RETURNS TABLE ("offset" text, event jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    s         state._streams;
    since_seq bigint;
    full_log  boolean;
BEGIN
    SELECT * INTO s FROM state._streams st WHERE st.id = state._stream_id(stream);
    full_log := state._can_read_stream(s.id);
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
    IF NOT full_log THEN
        IF EXISTS (SELECT 1 FROM state._collections c
                    WHERE c.stream_id = s.id AND NOT has_table_privilege(c.relid, 'SELECT')) THEN
            RAISE EXCEPTION 'permission denied for the changes of stream "%"', stream
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'Reading a stream''s changes needs SELECT on every collection table of the stream.',
                      HINT = 'Grant SELECT on the stream''s tables, or keep tenants in separate streams.';
        END IF;
        RETURN QUERY
            SELECT state.format_offset(f.seq),
                   jsonb_set(CASE f.verdict
                                 WHEN 'enter' THEN jsonb_set(f.event - 'old_value', '{headers,operation}',
                                     CASE WHEN f.event->'headers'->>'operation' IN ('update', 'upsert')
                                          THEN '"insert"' ELSE f.event->'headers'->'operation' END)
                                 WHEN 'leave' THEN jsonb_build_object('type', f.event->'type', 'key', f.event->'key',
                                     'headers', jsonb_build_object('operation', 'delete'))
                                 ELSE f.event END,
                             '{headers,offset}', to_jsonb(state.format_offset(f.seq)))
              FROM state._changes_filtered(s.name, since_seq, max_events) f;
        RETURN;
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

-- The events of a snapshot in one statement, so one MVCC snapshot: the
-- inserts and the offsets agree.
CREATE FUNCTION state._snapshot(stream text) RETURNS SETOF jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog
BEGIN ATOMIC
    SELECT ev FROM (
        SELECT 0 AS part, ''::text AS t, ''::text AS k,
               jsonb_build_object('headers', jsonb_build_object(
                   'control', 'snapshot-start', 'offset', state.format_offset(state._tail(s.id)))) AS ev
          FROM state._streams s WHERE s.name = _snapshot.stream
        UNION ALL
        SELECT 1, c.type, g.key,
               jsonb_build_object('type', c.type, 'key', g.key, 'value', g.value,
                                  'headers', jsonb_build_object('operation', 'insert'))
          FROM state._streams s
          JOIN state._collections c ON c.stream_id = s.id
          CROSS JOIN LATERAL state.get_type(c.type, s.name) g
         WHERE s.name = _snapshot.stream
        UNION ALL
        SELECT 2, '', '',
               jsonb_build_object('headers', jsonb_build_object(
                   'control', 'snapshot-end', 'offset', state.format_offset(state._tail(s.id))))
          FROM state._streams s WHERE s.name = _snapshot.stream
    ) x
    ORDER BY part, t COLLATE "C", k COLLATE "C";
END;

-- A snapshot is read from the collection tables (state.get_type), so it
-- needs SELECT on each of them and shows the rows their row-level security
-- policies let the caller see; unlike the log, it is open to tenants that
-- share a stream.
CREATE FUNCTION state.snapshot(stream text DEFAULT 'default') RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM state._stream_id(stream);   -- an unknown stream: a clear error
    RETURN QUERY SELECT * FROM state._snapshot(stream);
END
$$;

CREATE FUNCTION state.channel(stream text DEFAULT 'default') RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN stream ~ '^[a-z0-9_]{1,48}$' THEN 'state_' || stream
            ELSE 'state_' || md5(stream) END;

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------

CREATE VIEW state.collections AS
SELECT c.name, c.type, s.name AS stream, c.relid AS table_name, c.primary_key,
       c.kind, c.mode, c.allow_extra, c.check_old_value, c.assert_formats,
       c.extra_column, c.schema, c.created_at, c.version_column, c.default_ttl
  FROM state._collections c
  JOIN state._streams s ON s.id = c.stream_id;

-- The log, one row per event (with the reader's rights: the log's policy
-- shows only the streams the reader may read).
CREATE VIEW state.log_events WITH (security_invoker = true) AS
SELECT s.name AS stream, l.first_seq + e.ord - 1 AS seq,
       state.format_offset(l.first_seq + e.ord - 1) AS "offset",
       e.ev AS event, l.applied_at
  FROM state.log l
  JOIN state._streams s ON s.id = l.stream_id
 CROSS JOIN LATERAL unnest(l.events) WITH ORDINALITY AS e(ev, ord);

CREATE VIEW state.streams AS
SELECT s.name AS stream,
       state.format_offset(t.tail) AS tail,
       state.format_offset(s.retained_from - 1) AS retained_from,
       s.source_offset,
       s.in_snapshot,
       t.tail AS events_applied,
       t.tail - s.retained_from + 1 AS events_retained,
       s.retention_age,
       s.retention_events,
       (SELECT count(*) FROM state._collections c WHERE c.stream_id = s.id) AS collections,
       s.created_at,
       s.updated_at
  FROM state._streams s
 CROSS JOIN LATERAL (SELECT state._tail(s.id) AS tail) t;

CREATE FUNCTION state._shared_stats(
    OUT preloaded boolean, OUT worker_state text, OUT worker_pid integer,
    OUT worker_started_at timestamptz, OUT worker_last_loop_at timestamptz,
    OUT worker_starts integer, OUT flushed_lsn pg_lsn, OUT replicated_lsn pg_lsn,
    OUT standbys integer, OUT txid_waiters integer, OUT notifications_pending integer,
    OUT events_applied bigint, OUT batches_applied bigint, OUT events_rejected bigint,
    OUT notifications_sent bigint, OUT notifications_handed_to_worker bigint,
    OUT messages_published bigint, OUT txids_committed bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'ds_shared_stats'
LANGUAGE C VOLATILE;

-- Counters since the server started (shared memory: with the preload only;
-- events of rolled-back transactions count, as in pg_stat views), the
-- worker's state, and the catalog's size.
CREATE VIEW state.stats AS
SELECT x.*,
       current_setting('durable_state.notify') AS notify_mode,
       (SELECT count(*) FROM state._streams) AS streams,
       (SELECT count(*) FROM state._collections) AS collections
  FROM state._shared_stats() x;

-- ---------------------------------------------------------------------------
-- Notifications, txids, retention (SPEC section 4)
-- ---------------------------------------------------------------------------

CREATE FUNCTION state.publish(topic text, message jsonb, stream text DEFAULT 'default')
RETURNS void
AS 'MODULE_PATHNAME', 'ds_publish'
LANGUAGE C VOLATILE;

CREATE FUNCTION state.await_txid(txid text, timeout_ms integer DEFAULT 5000,
                                 durability text DEFAULT 'committed')
RETURNS boolean
AS 'MODULE_PATHNAME', 'ds_await_txid'
LANGUAGE C VOLATILE;

CREATE FUNCTION state.txid_status(txid text) RETURNS text
AS 'MODULE_PATHNAME', 'ds_txid_status'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION state.set_retention(stream text DEFAULT 'default',
                                    max_age interval DEFAULT NULL,
                                    max_events bigint DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF max_age <= interval '0' OR max_events <= 0 THEN
        RAISE EXCEPTION 'retention must be positive'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'NULL keeps the log without that limit.';
    END IF;
    UPDATE state._streams s
       SET retention_age = set_retention.max_age, retention_events = set_retention.max_events
     WHERE s.name = set_retention.stream;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stream "%" does not exist', stream
            USING ERRCODE = 'undefined_object';
    END IF;
END
$$;

-- The worker's periodic pruning: txids past their retention, and whole log
-- segments beyond each stream's retention.  A stream whose row a writer
-- holds is left for the next round.
CREATE FUNCTION state._maintain(txid_retention integer) RETURNS void
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
REVOKE ALL ON FUNCTION state._maintain(integer) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Key/value writes as events, and TTLs
-- ---------------------------------------------------------------------------

CREATE FUNCTION state._ttl_set(stream text, type text, key text, expires_at timestamptz)
RETURNS void
AS 'MODULE_PATHNAME', 'ds_ttl_set'
LANGUAGE C VOLATILE;

-- Locks a stream's row as a batch does (held to commit): read-modify-write
-- functions take it before reading, so that no batch of the stream commits
-- between their read and their write.  False if the stream does not exist.
CREATE FUNCTION state._lock_stream(stream text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ds_lock_stream'
LANGUAGE C VOLATILE STRICT;

-- An upsert as an event (logged, notified, schema-checked like apply);
-- with a TTL the entity expires that long after the put (without one, the
-- collection's default_ttl applies, if it has one).  With expected_version
-- it is a compare-and-set: the entity's version must be that (0: absent),
-- else nothing is written and the error is 40001.  Returns its offset.
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

-- Adds "by" to a numeric member of the entity (absent member or entity:
-- from 0), as one logged upsert; returns the new number.  The stream's lock
-- is taken before the read, so concurrent increments never lose one.
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

-- A delete as an event; false (and nothing logged) if the entity is absent
-- (or expired).
CREATE FUNCTION state.remove(type text, key text, stream text DEFAULT 'default')
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF state.get(remove.type, remove.key, remove.stream) IS NULL THEN
        RETURN false;
    END IF;
    PERFORM state.apply(jsonb_build_object('type', remove.type, 'key', remove.key,
                                           'headers', jsonb_build_object('operation', 'delete')),
                        remove.stream);
    RETURN true;
EXCEPTION WHEN no_data_found THEN
    -- removed concurrently (strict collection)
    RETURN false;
END
$$;

-- The worker's TTL sweep: every expired entity is deleted with a logged
-- delete event, per stream in one batch, under the stream's lock (so a put
-- that renews the TTL either commits first and is seen, or comes after).
CREATE FUNCTION state._expire() RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    s record;
    e record;
    evs jsonb;
    n bigint := 0;
BEGIN
    FOR s IN SELECT DISTINCT x.stream_id, st.name
               FROM state._expiry x JOIN state._streams st ON st.id = x.stream_id
              WHERE x.expires_at <= clock_timestamp() LOOP
        PERFORM 1 FROM state._streams st WHERE st.id = s.stream_id FOR UPDATE;
        SELECT jsonb_agg(jsonb_build_object('type', x.type, 'key', x.key,
                                            'headers', jsonb_build_object('operation', 'delete'))
                         ORDER BY x.type, x.key)
          INTO evs
          FROM state._expiry x
         WHERE x.stream_id = s.stream_id AND x.expires_at <= clock_timestamp();
        CONTINUE WHEN evs IS NULL;
        BEGIN
            PERFORM state.apply(evs, s.name);
            n := n + jsonb_array_length(evs);
        EXCEPTION WHEN OTHERS THEN
            -- one by one: an entity deleted behind the collection's back, or
            -- a collection dropped since, only loses its expiry row
            FOR e IN SELECT x.type, x.key FROM state._expiry x
                      WHERE x.stream_id = s.stream_id AND x.expires_at <= clock_timestamp() LOOP
                BEGIN
                    PERFORM state.apply(jsonb_build_object('type', e.type, 'key', e.key,
                                        'headers', jsonb_build_object('operation', 'delete')), s.name);
                    n := n + 1;
                EXCEPTION WHEN OTHERS THEN
                    RAISE WARNING 'durable_state: could not expire "%" of type "%" in stream "%": %',
                                  e.key, e.type, s.name, SQLERRM;
                    DELETE FROM state._expiry x
                     WHERE x.stream_id = s.stream_id AND x.type = e.type AND x.key = e.key;
                END;
            END LOOP;
        END;
    END LOOP;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION state._expire() FROM PUBLIC;

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
