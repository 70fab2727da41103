-- durable_state 0.8.0 -> 0.9.0
--
-- Fewer txid rows for large batches.  Each section below belongs to one
-- change; keep them apart.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.9.0'" to load this file. \quit

-- == txids: packed rows for large batches ==

-- A batch of 8,192 txids or more no longer writes a row (and an index
-- entry) per txid: its sorted hashes are split by their top 10 bits into
-- up to 1,024 groups, and each group goes into rows of at most 200 hashes
-- (kept inline, under the TOAST threshold) in packed, with hash set to the
-- group's key (src/txid.c: the group's top bits, all lower bits set).  A
-- look-up probes the (gen, hash) index for the txid's hash and for its
-- group's key, and searches the packed array of a row that has one; a row
-- without one names its hash alone, as before.  A 100,000-txid batch
-- writes about 1,024 rows instead of 100,000.
ALTER TABLE state._txids ADD COLUMN packed bigint[];
COMMENT ON COLUMN state._txids.packed IS
    'The sorted hashes of a packed row (a large batch''s txids whose hashes share their top 10 bits; hash is then the group''s key), or NULL: the row names hash alone.';
COMMENT ON TABLE state._txids IS
    'The txids of committed batches, a row each or, for large batches, packed by hash (state.await_txid, state.txid_status); pruned after durable_state.txid_retention.';
