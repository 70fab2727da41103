-- bench/increment.sh: one pgbench transaction = one state.increment() of a
-- counter.  pgbench -D sets :type, :stream, :per_client (1: client N writes
-- to stream <stream>N; 0: every client writes to <stream>) and :hot (0: the
-- counter of client N is key cN, 8 clients = 8 counters; 1: every client
-- increments c0).  Run with -M prepared: variables are bound as parameters.
\set k :client_id * (1 - :hot)
SELECT state.increment(:type::text, 'c' || :k::text, 'n', 1,
                       :stream::text || CASE WHEN :per_client::int = 1 THEN :client_id::text ELSE '' END);
