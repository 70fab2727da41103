#!/usr/bin/env node
// test/t/wait_reads.js -- waiting reads: state.changes(stream, since,
// max_events, wait_ms) (issue 14, item 1; src/waitread.c).
//
// In a database of its own (ds_wait_reads):
//   1. nothing after since: returns no rows after about wait_ms (>= wait_ms)
//   2. a commit while a reader waits: the reader returns it, in order, long
//      before its timeout; wake-up latency (commit acknowledged -> rows
//      back), 200 rounds on one stream, median / p99 / max as notes (not
//      checked: the machine is shared; the target is 1 ms p99 idle)
//   3. a reader stopped at the gap of a batch in flight: the batch rolls
//      back, a later batch commits: the reader returns the later one
//   4. a rolled-back batch alone: the waiter times out with no rows
//   5. cancel (pg_cancel_backend) ends a waiting read with 57014,
//      statement_timeout with 57014, pg_terminate_backend with 57P01
//   6. wait_ms < 0: 22023; under REPEATABLE READ: 0A000 with its hint
//   7. readers of another stream are not returned anything
//   8. 'now' as since: only what commits after the call
//
// Environment: the PG* variables of the test cluster (test/run.sh exports
// them).  Prints `ok - ...` / `not ok - ...` per check and `N passed, M failed`.
'use strict';
const path = require('path');
const { check, note, summary, counts } = require(path.join(__dirname, '../node/tap.js'));

let pg;
try {
  pg = require(path.join(__dirname, '../node/node_modules/pg'));
} catch (e) {
  console.log('not ok - the pg package is missing (cd test/node && npm ci)');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const DB = 'ds_wait_reads';
const ev = (key, n) => JSON.stringify([{ type: 'doc', key, value: { n }, headers: { operation: 'upsert' } }]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function connect(db) {
  const c = new pg.Client({ database: db });
  await c.connect();
  c.on('error', () => {});
  return c;
}

async function main() {
  const admin = await connect(process.env.PGDATABASE || 'postgres');
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  const w = await connect(DB);
  const r = await connect(DB);
  const r2 = await connect(DB);
  try {
    await w.query('CREATE EXTENSION durable_state');
    await w.query("SELECT state.create_collection('docs', 'doc', stream => 'ws')");
    await w.query("SELECT state.create_collection('others', 'other', stream => 'wo')");
    const tail = async () => (await w.query("SELECT state.tail('ws') AS t")).rows[0].t;

    // 1. timeout
    let t0 = process.hrtime.bigint();
    let res = await r.query('SELECT * FROM state.changes($1, $2, 10, 300)', ['ws', await tail()]);
    let ms = Number(process.hrtime.bigint() - t0) / 1e6;
    check(res.rows.length === 0 && ms >= 295, `nothing to read: no rows after the 300 ms (${ms.toFixed(0)} ms)`, JSON.stringify(res.rows));

    // 2. a commit wakes the reader; latency
    const lat = [];
    let inOrder = true;
    for (let i = 0; i < 200; i++) {
      const since = await tail();
      const p = r.query('SELECT "offset", event FROM state.changes($1, $2, 10, 5000)', ['ws', since]);
      await sleep(i < 5 ? 20 : 2);
      await w.query("SELECT applied FROM state.apply($1, 'ws')", [ev(`k${i % 7}`, i)]);
      const t1 = process.hrtime.bigint();
      res = await p;
      lat.push(Number(process.hrtime.bigint() - t1) / 1e6);
      if (res.rows.length !== 1 || res.rows[0].event.value.n !== i || !(res.rows[0].offset > since)) inOrder = false;
    }
    lat.sort((a, b) => a - b);
    check(inOrder, 'a waiting reader returns the event committed while it waits (200 rounds, each the one event, after its since)');
    check(lat[lat.length - 1] < 2000, `... long before its 5 s timeout (max ${lat[lat.length - 1].toFixed(2)} ms)`);
    note(`wake-up after the commit returned to the writer: median ${lat[100].toFixed(2)} ms, p99 ${lat[197].toFixed(2)} ms, max ${lat[199].toFixed(2)} ms (round trip of the reader's result included; shared machine)`);

    // 3. a reader at the gap of a batch in flight
    let since = await tail();
    const inflight = await connect(DB);
    await inflight.query('BEGIN');
    await inflight.query("SELECT applied FROM state.apply($1, 'ws')", [ev('gap', 1)]);
    await w.query("SELECT applied FROM state.apply($1, 'ws')", [ev('after', 2)]);
    let p = r.query('SELECT "offset", event FROM state.changes($1, $2, 10, 5000)', ['ws', since]);
    await sleep(300);
    await inflight.query('ROLLBACK');
    t0 = process.hrtime.bigint();
    res = await p;
    ms = Number(process.hrtime.bigint() - t0) / 1e6;
    check(res.rows.length === 1 && res.rows[0].event.key === 'after',
      `a reader stopped at a batch in flight returns the later commit once the batch rolls back (${ms.toFixed(1)} ms after)`, JSON.stringify(res.rows));

    // 4. a rolled-back batch alone
    since = await tail();
    await inflight.query('BEGIN');
    p = r.query('SELECT count(*)::int AS n FROM state.changes($1, $2, 10, 600)', ['ws', since]);
    await sleep(100);
    await inflight.query("SELECT applied FROM state.apply($1, 'ws')", [ev('rb', 1)]);
    await inflight.query('ROLLBACK');
    res = await p;
    check(res.rows[0].n === 0, 'a rolled-back batch wakes nobody with rows: the waiter times out with none');
    await inflight.end();

    // 5. cancel, statement_timeout, terminate
    const pidOf = async (c) => (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    since = await tail();
    let rpid = await pidOf(r);
    p = r.query('SELECT * FROM state.changes($1, $2, 10, 60000)', ['ws', since]).then(() => null, (e) => e);
    await sleep(200);
    await w.query('SELECT pg_cancel_backend($1)', [rpid]);
    let err = await p;
    check(err && err.code === '57014', 'pg_cancel_backend ends a waiting read (57014)', err && `${err.code} ${err.message}`);
    await r.query('SET statement_timeout = 300');
    t0 = process.hrtime.bigint();
    err = await r.query('SELECT * FROM state.changes($1, $2, 10, 60000)', ['ws', since]).then(() => null, (e) => e);
    ms = Number(process.hrtime.bigint() - t0) / 1e6;
    check(err && err.code === '57014' && ms < 5000, `statement_timeout ends a waiting read (57014, ${ms.toFixed(0)} ms)`, err && `${err.code} ${err.message}`);
    await r.query('RESET statement_timeout');
    rpid = await pidOf(r2);
    p = r2.query('SELECT * FROM state.changes($1, $2, 10, 60000)', ['ws', since]).then(() => null, (e) => e);
    await sleep(200);
    await w.query('SELECT pg_terminate_backend($1)', [rpid]);
    err = await p;
    check(err && err.code === '57P01', 'pg_terminate_backend ends a waiting read (57P01)', err && `${err.code} ${err.message}`);
    const waiting = (await w.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event = 'Extension' AND query LIKE '%state.changes%'", [DB])).rows[0].n;
    check(waiting === 0, 'no backend is left waiting');

    // 6. bad arguments
    err = await r.query("SELECT * FROM state.changes('ws', '-1', 10, -1)").then(() => null, (e) => e);
    check(err && err.code === '22023' && /wait_ms must be zero or positive/.test(err.message), 'wait_ms < 0: 22023', err && err.message);
    await r.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    err = await r.query("SELECT * FROM state.changes('ws', 'now', 10, 100)").then(() => null, (e) => e);
    await r.query('ROLLBACK');
    check(err && err.code === '0A000' && /cannot wait under REPEATABLE READ/.test(err.message) && /READ COMMITTED/.test(err.hint || ''),
      'under REPEATABLE READ a waiting read is refused (0A000, with a hint)', err && `${err.code} ${err.message} / ${err.hint}`);
    res = await r.query("SELECT count(*)::int AS n FROM state.changes('ws', 'now', 10, 0)");
    check(res.rows[0].n === 0, 'wait_ms = 0 does not wait (as before)');

    // 7. another stream's commit does not return rows to this reader
    since = await tail();
    p = r.query('SELECT count(*)::int AS n FROM state.changes($1, $2, 10, 500)', ['ws', since]);
    await sleep(100);
    await w.query("SELECT applied FROM state.apply($1, 'wo')", [JSON.stringify([{ type: 'other', key: 'x', value: {}, headers: { operation: 'upsert' } }])]);
    res = await p;
    check(res.rows[0].n === 0, "a commit on another stream returns nothing to this stream's reader");

    // 8. 'now'
    p = r.query("SELECT event->>'key' AS k FROM state.changes('ws', 'now', 10, 5000)");
    await sleep(200);
    await w.query("SELECT applied FROM state.apply($1, 'ws')", [ev('fresh', 9)]);
    res = await p;
    check(res.rows.length === 1 && res.rows[0].k === 'fresh', "since 'now': only the event committed after the call", JSON.stringify(res.rows));
  } finally {
    for (const c of [w, r, r2]) await c.end().catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => {});
    await admin.end();
  }
}

main().catch((e) => {
  check(false, 'the test ran to its end', e.stack);
}).finally(() => {
  console.log(summary());
  process.exit(counts.failed === 0 && counts.passed > 0 ? 0 : 1);
});
