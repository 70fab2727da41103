-- 00_helpers: functions the other pg_regress files share (they run in one
-- database, in name order, so this file runs first).
CREATE EXTENSION IF NOT EXISTS durable_state;
CREATE SCHEMA t;

-- SQLSTATE and message of an error on one line ('no error' if none).
CREATE FUNCTION t.expect_error(sql text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Same, with DETAIL and HINT.
CREATE FUNCTION t.expect_error_verbose(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    d text;
    h text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM
        || CASE WHEN d <> '' THEN E'\nDETAIL: ' || d ELSE '' END
        || CASE WHEN h <> '' THEN E'\nHINT: ' || h ELSE '' END;
END
$$;

-- SQLSTATE and whether the message matches a pattern.
CREATE FUNCTION t.expect_error_like(sql text, pattern text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || CASE WHEN SQLERRM ~ pattern THEN 'message matches'
                                    ELSE 'unexpected message: ' || SQLERRM END;
END
$$;

-- One change event as jsonb (value and old_value left out when NULL).
CREATE FUNCTION t.ev(type text, key text, op text, value jsonb DEFAULT NULL,
                     old_value jsonb DEFAULT NULL) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('type', type, 'key', key,
                                                'headers', jsonb_build_object('operation', op)))
           || CASE WHEN value IS NULL THEN '{}' ELSE jsonb_build_object('value', value) END
           || CASE WHEN old_value IS NULL THEN '{}' ELSE jsonb_build_object('old_value', old_value) END
$$;
