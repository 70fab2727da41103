-- durable_state 0.3.0 -> 0.4.0
--
-- 'replicated' counts only standbys that replay (physical walsenders that
-- report a replay position: never pg_receivewal, pg_basebackup or logical
-- walsenders), chosen by durable_state.replicated_standbys the way
-- synchronous_standby_names chooses synchronous standbys (src/standbys.c).
-- state.standbys shows every walsender the background worker saw, how far
-- it has replayed and whether it counts.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.4.0'" to load this file. \quit

CREATE FUNCTION state._standbys(
    OUT pid integer, OUT application_name text, OUT state text,
    OUT replay_lsn pg_lsn, OUT priority integer, OUT counts boolean, OUT role text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ds_standbys'
LANGUAGE C VOLATILE;

-- One row per walsender on the worker's last loop: role is 'counts', 'not
-- chosen' (replays, but the setting does not choose it), 'no replay
-- position' (pg_receivewal, pg_basebackup, or a standby that has not
-- reported yet), 'not streaming', 'logical' or 'starting'; priority is
-- the position of the first name in the setting that matches it (0: none;
-- NULL with 'all').  Like pg_stat_replication's positions, for roles with
-- pg_read_all_stats.
CREATE VIEW state.standbys AS
SELECT * FROM state._standbys();

REVOKE ALL ON FUNCTION state._standbys() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state._standbys() TO pg_read_all_stats;
GRANT SELECT ON state.standbys TO pg_read_all_stats;
