-- bench/notify.sh: one pgbench transaction = one state.apply() of ONE upsert
-- event carrying a txid.  pgbench -D sets :keys, :type, :stream and
-- :per_client (1: client N writes to stream <stream>N; 0: every client writes
-- to <stream>).  Run with -M prepared or extended: variables are bound as
-- parameters.
\set key random(1, :keys)
\set t random(1, 1000000000000000)
SELECT state.apply(jsonb_build_array(jsonb_build_object(
           'type', :type::text,
           'key', 'k' || :key::text,
           'value', jsonb_build_object('n', :t::bigint),
           'headers', jsonb_build_object('operation', 'upsert',
                                         'txid', 'c' || :client_id::text || '-' || :t::text))),
       :stream::text || CASE WHEN :per_client::int = 1 THEN :client_id::text ELSE '' END);
