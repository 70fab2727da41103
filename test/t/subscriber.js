#!/usr/bin/env node
// test/t/subscriber.js -- the lossless subscriber protocol of the README
// ("Subscribing: notifications and the lossless protocol"), end to end,
// with the real `pg` package (test/node, installed from its lockfile by
// test/run.sh; `cd test/node && npm ci` by hand).
//
// Run twice, with the writers' sessions at durable_state.notify = commit
// (in a database of its own, ds_subscriber, created and dropped here) and
// = worker (in $PGDATABASE, ds_test: worker-mode notifications are sent by
// the background worker only for durable_state.database; on a stream and a
// collection of its own, dropped at the end):
//   * four writer connections run WRITES transactions each, of 1..5 events
//     (lenient upserts, inserts and deletes on shared random keys), about one
//     in ten rolled back (ROLLBACK, or an error then ROLLBACK) and about one
//     in ten with a savepoint rolled back or released inside a committed
//     transaction; all on ONE stream, so they run side by side and commit in
//     another order than their offsets.  A transaction of several batches
//     can deadlock with another (40P01, as UPDATEs do): the writer counts it
//     as rolled back (as 40001, should it come), as a real client that would
//     retry it.  Each records every committed batch's events and offsets,
//     the offsets of every batch rolled back, and when each commit was sent
//     and acknowledged;
//   * subscriber A implements the protocol here, on pg.Client: connect,
//     LISTEN state.channel(stream), read changes(since => last) page by page
//     until empty; again on every notification; on a lost connection,
//     reconnect and do the same from the remembered offset.  It never polls.
//     Subscriber B is the Node client's Subscription (clients/node).  The
//     backends of both are terminated twice during the writes (at 30% and
//     60% of them); the writers' last tenth waits until both are back, so
//     that the final catch-up can only come from notifications.
// Checks: no two committed events share an offset, all are in 1..tail, and
// every offset below the tail without one was handed to a batch that rolled
// back (gaps); A received exactly the committed events, offsets strictly
// increasing, each once, each at the offset apply returned and equal to what
// its writer committed, nothing rolled back, every writer's events in its
// commit order; it lost its connection exactly twice (to the terminations)
// and reconnected twice; it caught up within seconds of the last commit
// through a notification; every notification it got is well formed, and
// every committed transaction is covered by one, except those that may have
// committed while it was not listening (acknowledged after the commit of
// the last transaction notified on a killed connection was sent, and sent
// before the next connection's LISTEN returned: commits come in another order
// than offsets, so an offset window would not do); with notify = commit the
// notifications are exactly one per committed transaction (same
// from/to/count/types/txids); with notify = worker the worker was handed
// every commit; A got no more notifications than were sent.  B received
// the same events and reconnected twice (once per termination: no more
// notifications than were sent, so no second connection left listening).
//
// Environment: the PG* variables of the test cluster (test/run.sh exports
// them); DS_SUB_WRITES (transactions per writer, default 600).
// Prints `ok - ...` / `not ok - ...` per check and `N passed, M failed`.
'use strict';
const path = require('path');

const WRITERS = 4;
const WRITES = Number(process.env.DS_SUB_WRITES || 600); // transactions per writer
const KEYS = 50;
const PAGE = 500; // changes() page size of subscriber A
const TYPE = 'item';
const SUB_DB = 'ds_subscriber';
const MAIN_DB = process.env.PGDATABASE || 'ds_test';

let phase = 'starting'; // what the test is doing, for the watchdog
const { check, note, summary, counts } = require(path.join(__dirname, '../node/tap.js'));
const { canon } = require(path.join(__dirname, '../node/events.js'));

let pg;
try {
  pg = require(path.join(__dirname, '../node/node_modules/pg'));
} catch (e) {
  check(false, 'pg is installed in test/node', `${e.message}\n(run: cd test/node && npm ci)`);
  console.log(summary());
  process.exit(1);
}
// The Node client (subscriber B); loaded per scenario so that its absence is one failed check.
function loadClient() {
  return require(path.join(__dirname, '../../clients/node'));
}

const { rng } = require(path.join(__dirname, '../node/prng.js'));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, ms, step = 10) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(step);
  }
  return true;
}
const fmt = (n) => String(n).padStart(20, '0');
const now = () => performance.now();
// a transaction that failed on a lock: a deadlock (40P01) or a serialization failure (40001)
const RETRYABLE = ['40P01', '40001'];

/*
 * Subscriber A: the README's protocol on a plain pg.Client.
 *   1. connect, LISTEN the channel, then read changes(since => last) until empty;
 *   2. on every notification, read again until empty;
 *   3. on any disconnect, go back to 1 with the remembered offset.
 * Reads of one connection are serialized (a notification during a read
 * makes the reader go round once more).  Bookkeeping for the checks: each
 * connection's backend pid, why it ended, the offset its first catch-up
 * reached, and every notification with the connection it came on.
 */
class Subscriber {
  constructor(stream, database) {
    this.stream = stream;
    this.database = database;
    this.last = '-1';
    this.events = []; // {offset, event, conn, why}
    this.notes = []; // {conn, channel, payload, raw}
    this.conns = [];
    this.conn = null;
    this.losses = 0; // established connections lost
    this.reconnects = 0; // connections re-established after a loss
    this.closed = false;
  }

  get lastN() {
    return this.last === '-1' ? 0 : Number(this.last);
  }

  get pid() {
    return this.conn && this.conn.ready && !this.conn.lost ? this.conn.pid : null;
  }

  async connect() {
    const client = new pg.Client({ database: this.database });
    const conn = {
      index: this.conns.length, client, pid: null, ready: false, lost: false, why: null,
      catchUpEnd: null, maxTo: 0, reading: null, again: null, listened: null, lastNote: null,
    };
    this.conns.push(conn);
    this.conn = conn;
    client.on('error', (e) => this.lost(conn, e));
    client.on('end', () => this.lost(conn, new Error('connection ended')));
    client.on('notification', (n) => this.notified(conn, n));
    try {
      await client.connect();
      conn.pid = client.processID;
      const ch = (await client.query('SELECT state.channel($1) AS c', [this.stream])).rows[0].c;
      this.channel = ch;
      await client.query(`LISTEN ${client.escapeIdentifier(ch)}`);
      conn.listened = now();
      await this.read(conn, 'connect');
      if (conn.lost) return;
      conn.ready = true;
      if (conn.index > 0) this.reconnects++;
    } catch (e) {
      this.lost(conn, e);
    }
  }

  notified(conn, n) {
    if (conn.lost) return;
    let payload = null;
    try {
      payload = JSON.parse(n.payload);
    } catch {
      payload = null;
    }
    this.notes.push({ conn: conn.index, channel: n.channel, payload, raw: n.payload });
    if (payload && payload.to !== undefined) conn.maxTo = Math.max(conn.maxTo, Number(payload.to));
    conn.lastNote = payload;
    this.read(conn, 'notify').catch((e) => this.lost(conn, e));
  }

  /* Reads until empty; one reader per connection, re-run if woken meanwhile. */
  read(conn, why) {
    if (conn.reading) {
      conn.again = why === 'connect' ? 'connect' : conn.again || why;
      return conn.reading;
    }
    conn.reading = (async () => {
      try {
        for (let w = why; w && !conn.lost;) {
          conn.again = null;
          await this.pass(conn, w);
          if (w === 'connect' && conn.catchUpEnd === null) conn.catchUpEnd = this.lastN;
          w = conn.again;
        }
      } finally {
        conn.reading = null;
      }
    })();
    return conn.reading;
  }

  async pass(conn, why) {
    for (;;) {
      const r = await conn.client.query('SELECT "offset", event FROM state.changes($1, $2, $3)',
        [this.stream, this.last, PAGE]);
      if (conn.lost || this.closed || r.rows.length === 0) return;
      for (const row of r.rows) this.events.push({ offset: row.offset, event: row.event, conn: conn.index, why });
      this.last = r.rows[r.rows.length - 1].offset;
    }
  }

  lost(conn, err) {
    if (conn.lost) return;
    conn.lost = true;
    conn.why = (err && (err.code || err.message)) || 'unknown';
    if (conn.ready) this.losses++;
    conn.client.removeAllListeners('notification');
    conn.client.end().catch(() => {});
    if (this.closed || conn !== this.conn) return;
    setTimeout(() => {
      if (!this.closed) this.connect();
    }, 50);
  }

  async close() {
    this.closed = true;
    const conn = this.conn;
    if (conn && !conn.lost) {
      conn.lost = true;
      conn.why = 'closed';
      conn.client.removeAllListeners('notification');
      await conn.client.end().catch(() => {});
    }
  }
}

/*
 * One writer: WRITES transactions on its own connection.  Returns the
 * committed transactions {txid, batches: [{events, first, last}], sent, acked}
 * in commit order (sent, acked: when the commit was sent and acknowledged),
 * the rolled-back txids and batches, the transactions that failed with
 * 40P01/40001 (rolled back), and the bad batches that did not fail.
 */
async function writer(id, database, stream, mode, progress, gate) {
  const c = new pg.Client({ database });
  c.on('error', () => {}); // a query in flight gets the error too
  await c.connect();
  try {
    return await writes(c, id, stream, mode, progress, gate);
  } finally {
    await c.end().catch(() => {});
  }
}

async function writes(c, id, stream, mode, progress, gate) {
  await c.query(`SET durable_state.notify = ${mode}`);
  const shown = (await c.query("SELECT current_setting('durable_state.notify') AS m")).rows[0].m;
  if (shown !== mode) throw new Error(`writer ${id}: durable_state.notify is ${shown}`);
  const rand = rng(1000 * (mode === 'worker' ? 2 : 1) + id);
  const committed = [];
  const rolledBack = [];
  const rolledBackBatches = []; // {first, last}: offsets handed to batches that were rolled back
  const failed = {}; // SQLSTATE -> transactions rolled back on it
  const unfailed = [];
  let seq = 0;
  let applied = []; // the batches the current transaction applied
  const batch = (txid) => {
    const n = 1 + Math.floor(rand() * 5);
    const events = [];
    for (let i = 0; i < n; i++) {
      const key = `k${Math.floor(rand() * KEYS)}`;
      const r = rand();
      const op = r < 0.5 ? 'upsert' : r < 0.75 ? 'insert' : 'delete';
      const headers = { operation: op, txid };
      events.push(op === 'delete' ? { type: TYPE, key, headers }
        : { type: TYPE, key, value: { w: id, n: seq++ }, headers });
    }
    return events;
  };
  const apply = async (events) => {
    const r = await c.query('SELECT applied, last_offset FROM state.apply($1::jsonb, $2)',
      [JSON.stringify(events), stream]);
    const last = Number(r.rows[0].last_offset);
    const b = { events, first: last - Number(r.rows[0].applied) + 1, last };
    applied.push(b);
    return b;
  };
  // a batch that fails inside apply (a type without a collection: 42704)
  const bad = async (txid) => {
    try {
      await c.query('SELECT state.apply($1::jsonb, $2)', [JSON.stringify(
        [{ type: 'no_such_type', key: 'x', value: 1, headers: { operation: 'upsert', txid } }]), stream]);
      unfailed.push(txid);
    } catch (e) {
      if (e.code !== '42704') unfailed.push(`${txid}: ${e.code} ${e.message}`);
    }
  };
  for (let t = 0; t < WRITES; t++) {
    // the last tenth waits until the subscribers are back from their second
    // termination, so that their final catch-up is through notifications
    if (t === Math.floor(WRITES * 0.9)) await gate;
    const txid = `${stream}.${id}.${t}`;
    const x = `${txid}.x`; // the txid of events that are rolled back
    const r = rand();
    let batches = null;
    let sent = now(); // when the commit was sent (autocommit: the apply)
    applied = [];
    try {
    if (r < 0.05) { // rolled back
      await c.query('BEGIN');
      await apply(batch(txid));
      await c.query('ROLLBACK');
      rolledBack.push(txid);
    } else if (r < 0.10) { // an error, then rolled back
      await c.query('BEGIN');
      await apply(batch(txid));
      await bad(txid);
      await c.query('ROLLBACK');
      rolledBack.push(txid);
    } else if (r < 0.13) { // a savepoint rolled back between two committed batches
      await c.query('BEGIN');
      const a = await apply(batch(txid));
      await c.query('SAVEPOINT s');
      await apply(batch(x));
      await c.query('ROLLBACK TO SAVEPOINT s');
      const b = await apply(batch(txid));
      sent = now();
      await c.query('COMMIT');
      batches = [a, b];
      rolledBack.push(x);
    } else if (r < 0.16) { // the first batch, in a savepoint, rolled back (the stream's lock goes with it)
      await c.query('BEGIN');
      await c.query('SAVEPOINT s');
      await apply(batch(x));
      await c.query('ROLLBACK TO SAVEPOINT s');
      const a = await apply(batch(txid));
      sent = now();
      await c.query('COMMIT');
      batches = [a];
      rolledBack.push(x);
    } else if (r < 0.18) { // a savepoint released
      await c.query('BEGIN');
      const a = await apply(batch(txid));
      await c.query('SAVEPOINT s');
      const b = await apply(batch(txid));
      await c.query('RELEASE SAVEPOINT s');
      sent = now();
      await c.query('COMMIT');
      batches = [a, b];
    } else if (r < 0.20) { // an error in a savepoint, rolled back to it, committed
      await c.query('BEGIN');
      const a = await apply(batch(txid));
      await c.query('SAVEPOINT s');
      await bad(x);
      await c.query('ROLLBACK TO SAVEPOINT s');
      sent = now();
      await c.query('COMMIT');
      batches = [a];
    } else {
      sent = now();
      batches = [await apply(batch(txid))];
    }
    } catch (e) {
      if (!RETRYABLE.includes(e.code)) throw e;
      // the transaction is rolled back (a client would retry it)
      await c.query('ROLLBACK');
      failed[e.code] = (failed[e.code] || 0) + 1;
      rolledBack.push(txid, x);
      batches = null;
    }
    if (batches) {
      committed.push({ writer: id, txid, batches, sent, acked: now() });
      // what a savepoint rolled back
      for (const b of applied) if (!batches.includes(b)) rolledBackBatches.push(b);
    } else {
      rolledBackBatches.push(...applied);
    }
    progress[id] = t + 1;
  }
  return { committed, rolledBack, rolledBackBatches, failed, unfailed };
}

async function stats(client) {
  const r = await client.query(`SELECT worker_state, notifications_sent AS sent,
      notifications_handed_to_worker AS handed FROM state.stats`);
  return { worker: r.rows[0].worker_state, sent: Number(r.rows[0].sent), handed: Number(r.rows[0].handed) };
}

async function scenario(mode, admin) {
  const label = `notify=${mode}`;
  const own = mode === 'commit'; // commit: a database of its own; worker: the worker's database
  const database = own ? SUB_DB : MAIN_DB;
  const stream = own ? 'sub_x' : `Sub.${process.pid}`; // the latter has a state_<md5> channel
  const table = own ? 'sub_items' : `sub_${process.pid}`;
  const t0 = Date.now();
  const cleanup = [];
  const db = new pg.Client({ database });
  db.on('error', (e) => note(`${label}: ${database} connection: ${e.message}`));
  try {
    if (own) {
      await admin.query(`DROP DATABASE IF EXISTS ${SUB_DB} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${SUB_DB}`);
      cleanup.push(() => admin.query(`DROP DATABASE IF EXISTS ${SUB_DB} WITH (FORCE)`));
    }
    await db.connect();
    cleanup.unshift(() => db.end());
    if (own) {
      await db.query('CREATE EXTENSION durable_state');
    } else {
      const had = (await db.query("SELECT 1 FROM pg_extension WHERE extname = 'durable_state'")).rows.length > 0;
      if (!had) {
        await db.query('CREATE EXTENSION durable_state');
        cleanup.unshift(() => db.query('DROP EXTENSION durable_state'));
      }
      // a CREATE EXTENSION just made starts the worker at its commit: give it 10 s
      let r;
      for (let i = 0; i < 100; i++) {
        r = (await db.query(`SELECT current_setting('durable_state.database') AS served,
            current_database() AS db, worker_state FROM state.stats`)).rows[0];
        if (r.worker_state === 'running') break;
        await sleep(100);
      }
      if (!check((r.served === r.db || r.served === '*') && r.worker_state === 'running',
        `${label}: the worker runs and serves this database (${r.db})`,
        `durable_state.database = ${r.served}, current database ${r.db}, worker ${r.worker_state}`)) return;
      cleanup.unshift(async () => {
        await db.query('SELECT state.drop_collection($1, $2, drop_table => true)', [table, stream]);
        for (const t of ['state.log', 'state._txids', 'state._expiry']) {
          await db.query(`DELETE FROM ${t} WHERE stream_id = (SELECT id FROM state._streams WHERE name = $1)`, [stream]);
        }
        await db.query('DELETE FROM state._streams WHERE name = $1', [stream]);
      });
    }
    await db.query("SELECT state.create_collection($1, $2, stream => $3, mode => 'lenient')", [table, TYPE, stream]);
    const channel = (await db.query('SELECT state.channel($1) AS c', [stream])).rows[0].c;
    const stats0 = await stats(db);

    // subscriber A (this file's protocol) and B (the Node client's Subscription)
    const A = new Subscriber(stream, database);
    cleanup.unshift(() => A.close());
    A.connect();
    let B = null;
    const bEvents = [];
    try {
      const { DurableState } = loadClient();
      const ds = new DurableState({ stream, pg: { database }, max: 1 });
      B = ds.subscribe({ onEvents: (evs) => { bEvents.push(...evs); } });
      B.on('error', (e) => note(`${label}: subscriber B error: ${e.message}`));
      cleanup.unshift(() => ds.close());
    } catch (e) {
      check(false, `${label}: the Node client (clients/node) loads`, `${e.message}\n(run: cd clients/node && npm ci)`);
    }
    const bReady = B ? new Promise((res) => B.once('ready', res)) : Promise.resolve();
    const ready = await until(() => A.pid !== null, 10000) &&
      await Promise.race([bReady.then(() => true), sleep(10000).then(() => false)]);
    if (!check(ready, `${label}: the subscribers connected and listen on ${channel}`)) return;

    // the writers, and two terminations of each subscriber's backend
    const progress = new Array(WRITERS).fill(0);
    let gateOpen;
    const gate = new Promise((res) => { gateOpen = res; });
    const writers = [];
    let writerFailed = false;
    for (let w = 0; w < WRITERS; w++) {
      writers.push(writer(w, database, stream, mode, progress, gate).catch((e) => {
        writerFailed = true;
        throw e;
      }));
    }
    const killedA = [];
    const killedB = [];
    const killer = (async () => {
      for (const share of [0.3, 0.6]) {
        while (!writerFailed && progress.reduce((a, b) => a + b, 0) < share * WRITERS * WRITES) await sleep(5);
        phase = `${label}: terminating the subscribers at ${progress} transactions`;
        if (writerFailed || !await until(() => A.pid !== null && (!B || B.pid), 10000)) break;
        const pidA = A.pid;
        const pidB = B && B.pid;
        if ((await admin.query('SELECT pg_terminate_backend($1) AS t', [pidA])).rows[0].t) killedA.push(pidA);
        if (B && (await admin.query('SELECT pg_terminate_backend($1) AS t', [pidB])).rows[0].t) killedB.push(pidB);
        // both come back before the next termination
        await until(() => A.pid !== null && A.pid !== pidA && (!B || (B.pid && B.pid !== pidB)), 10000);
      }
    })().finally(gateOpen);
    phase = `${label}: writing`;
    const settled = await Promise.allSettled(writers);
    phase = `${label}: following the writes`;
    const writersDone = Date.now();
    progress.fill(WRITES); // the killer must not wait for a writer that failed
    await killer;
    const failedWriters = settled.filter((r) => r.status === 'rejected');
    if (!check(failedWriters.length === 0, `${label}: the ${WRITERS} writers ran`,
      failedWriters.map((r) => r.reason.stack).join('\n'))) return;
    const results = settled.map((r) => r.value);
    const tail = Number((await db.query('SELECT state.tail($1) AS t', [stream])).rows[0].t);

    // A follows through notifications only; this loop polls nothing but A's memory
    const caughtUp = await until(() => A.lastN >= tail, 10000, 5);
    const caughtUpMs = Date.now() - writersDone;
    // the notification of the last commit (and, in worker mode, of everything before it)
    await until(() => A.conn.maxTo >= tail, 5000, 5);
    const bCaughtUp = B ? await until(() => B.lastOffset === fmt(tail), 10000, 5) : false;
    await sleep(100);
    await A.close();
    if (B) await B.close();
    const stats1 = await stats(db);
    const ms = Date.now() - t0;

    // --- the writers' record -------------------------------------------------
    const txns = results.flatMap((r) => r.committed);
    const rolledBack = new Set(results.flatMap((r) => r.rolledBack));
    const unfailed = results.flatMap((r) => r.unfailed);
    const failed = {};
    for (const r of results) for (const [k, v] of Object.entries(r.failed)) failed[k] = (failed[k] || 0) + v;
    const expected = new Array(tail + 1).fill(null); // offset -> {event, txn}
    let overlap = null;
    let outside = null;
    let committedEvents = 0;
    for (const t of txns) {
      for (const b of t.batches) {
        b.events.forEach((ev, i) => {
          const off = b.first + i;
          committedEvents++;
          if (off < 1 || off > tail) outside = outside || `${t.txid}: offset ${off}, tail ${tail}`;
          else if (expected[off]) overlap = overlap || `offset ${off}: ${expected[off].txn.txid} and ${t.txid}`;
          else expected[off] = { event: ev, txn: t };
        });
      }
      const fs = t.batches.map((b) => b.first);
      t.from = Math.min(...fs);
      t.to = Math.max(...t.batches.map((b) => b.last));
      t.count = t.batches.reduce((n, b) => n + b.events.length, 0);
    }
    // the committed offsets in order: what a reader must get
    const offsets = [];
    for (let o = 1; o <= tail; o++) if (expected[o]) offsets.push(o);
    // gaps: offsets below the tail that no committed event has
    const rbOffsets = new Set();
    for (const r of results) for (const b of r.rolledBackBatches) for (let o = b.first; o <= b.last; o++) rbOffsets.add(o);
    const holes = [];
    for (let o = 1; o <= tail; o++) if (!expected[o]) holes.push(o);
    const unexplained = holes.filter((o) => !rbOffsets.has(o));
    const rbCommitted = [...rbOffsets].filter((o) => o <= tail && expected[o]);

    note(`${label}: ${WRITERS} writers, ${WRITERS * WRITES} transactions: ${txns.length} committed ` +
      `(${committedEvents} events), ${results.reduce((n, r) => n + r.rolledBack.length, 0)} rolled back ` +
      `(whole or savepoint), of which ${JSON.stringify(failed)} on a lock (40P01 deadlock, 40001); ` +
      `tail ${tail}, ${holes.length} offsets below it left as gaps`);
    note(`${label}: A received ${A.events.length} events and ${A.notes.length} notifications on ` +
      `${A.conns.length} connections (${A.conns.map((c) => `pid ${c.pid}: ${c.why}`).join('; ')}); ` +
      `caught up ${caughtUpMs} ms after the last commit; ${ms} ms in all`);
    note(`${label}: B received ${bEvents.length} events, ${B ? B.notifications : 0} notifications, ` +
      `${B ? B.reconnects : 0} reconnects; stats: ${stats1.sent - stats0.sent} notifications sent, ` +
      `${stats1.handed - stats0.handed} handed to the worker`);

    check(unfailed.length === 0, `${label}: every deliberately bad batch failed with 42704`, unfailed.slice(0, 5).join('\n'));
    check(!overlap && !outside && offsets.length === committedEvents && expected[tail] !== null,
      `${label}: no two committed events share an offset, all are in 1..${tail}, the tail is a committed offset`,
      overlap || outside || `the tail ${tail} is no committed event's offset`);
    check(unexplained.length === 0 && rbCommitted.length === 0,
      `${label}: every offset below the tail without a committed event (${holes.length}) was handed to a batch that ` +
      'rolled back, and no offset of a rolled-back batch is a committed one\'s',
      unexplained.length ? `${unexplained.length} gap offsets no rolled-back batch got, e.g. ${unexplained.slice(0, 10)}`
        : `offsets of rolled-back batches committed again: ${rbCommitted.slice(0, 10)}`);

    // --- subscriber A: the events ---------------------------------------------
    check(caughtUp, `${label}: A caught up to the tail ${tail}`, `A is at ${A.last}`);
    const fin = A.conns[A.conns.length - 1];
    const lastRead = A.events.length ? A.events[A.events.length - 1] : null;
    check(caughtUp && caughtUpMs < 5000 && fin.catchUpEnd < tail && lastRead && lastRead.why === 'notify' &&
      lastRead.conn === fin.index,
    `${label}: after the last commit A caught up through a notification within 5 s (${caughtUpMs} ms)`,
    `caught up ${caughtUp} after ${caughtUpMs} ms; final connection's catch-up ended at ${fin.catchUpEnd}, tail ${tail}; ` +
      `last event read ${lastRead && `on connection ${lastRead.conn} (${lastRead.why})`}`);
    const lostPids = A.conns.filter((c) => c.why !== 'closed').map((c) => c.pid);
    check(killedA.length === 2 && A.losses === 2 && A.reconnects === 2 && A.conns.length === 3 &&
      canon(lostPids) === canon(killedA),
    `${label}: A's backend was terminated twice; it noticed, reconnected and resumed twice`,
    `terminated ${canon(killedA)}, connections lost ${canon(lostPids)} (${A.conns.map((c) => c.why)}), ` +
      `losses ${A.losses}, reconnects ${A.reconnects}`);
    let gap = null;
    A.events.forEach((e, i) => {
      if (gap === null && i > 0 && Number(e.offset) <= Number(A.events[i - 1].offset)) {
        gap = `event ${i} has offset ${e.offset}, after ${A.events[i - 1].offset}`;
      }
    });
    check(gap === null, `${label}: A received strictly increasing offsets`, gap);
    let miss = null;
    for (let i = 0; i < Math.max(offsets.length, A.events.length) && miss === null; i++) {
      const got = A.events[i] && Number(A.events[i].offset);
      if (got !== offsets[i]) {
        miss = offsets[i] === undefined ? `it received ${got}, which no committed event has` : got === undefined
          ? `it did not receive ${offsets[i]} (or anything after)` : got > offsets[i]
            ? `it never received committed offset ${offsets[i]}: it went from ${i ? A.events[i - 1].offset : 'the start'} to ${got}`
            : `it received ${got}, which no committed event has`;
      }
    }
    check(miss === null, `${label}: A received every committed event (${offsets.length}) exactly once, in offset order`, miss);
    let diff = null;
    for (let i = 0; i < A.events.length && diff === null; i++) {
      const e = A.events[i];
      const x = expected[Number(e.offset)];
      const want = x && { ...x.event, headers: { ...x.event.headers, offset: e.offset } };
      if (!x || canon(e.event) !== canon(want)) {
        diff = `offset ${e.offset}: received ${JSON.stringify(e.event)}, committed ${JSON.stringify(want)}`;
      }
    }
    check(diff === null && A.events.length === offsets.length,
      `${label}: every event A received is the event committed at its offset (type, key, value, headers)`, diff);
    const leaked = A.events.filter((e) => rolledBack.has(e.event.headers && e.event.headers.txid));
    check(leaked.length === 0, `${label}: A received nothing of a rolled-back transaction or savepoint`,
      leaked.slice(0, 3).map((e) => JSON.stringify(e.event)).join('\n'));
    let order = null;
    for (let w = 0; w < WRITERS && order === null; w++) {
      const seen = [];
      for (const e of A.events) {
        const tx = e.event.headers && e.event.headers.txid;
        if (tx && tx.startsWith(`${stream}.${w}.`) && seen[seen.length - 1] !== tx) seen.push(tx);
      }
      const mine = txns.filter((t) => t.writer === w).map((t) => t.txid);
      if (canon(seen) !== canon(mine)) order = `writer ${w}: received ${seen.length} transactions, committed ${mine.length}`;
    }
    check(order === null, `${label}: A received each writer's transactions in that writer's commit order`, order);

    // --- subscriber A: the notifications ---------------------------------------
    let bad = null;
    for (const n of A.notes) {
      const p = n.payload;
      const ok = p && p.stream === stream && n.channel === channel &&
        /^\d{20}$/.test(p.from) && /^\d{20}$/.test(p.to) && Number.isInteger(p.count) &&
        p.count >= 1 && Number(p.from) >= 1 && Number(p.to) <= tail && p.count <= Number(p.to) - Number(p.from) + 1 &&
        Array.isArray(p.types) && Array.isArray(p.txids) && Buffer.byteLength(n.raw) < 8000;
      if (!ok) {
        bad = `on ${n.channel}: ${n.raw}`;
        break;
      }
    }
    check(A.notes.length <= stats1.sent - stats0.sent,
      `${label}: A received no more notifications than were sent (${A.notes.length} of ${stats1.sent - stats0.sent})`);
    check(A.notes.length > 0 && bad === null,
      `${label}: all ${A.notes.length} notifications are JSON {stream, from, to, count, types, txids} on ${channel}, within 1..${tail}`,
      bad);
    // transactions that may have committed while A was not listening.  Postgres
    // delivers notifications in the order they were queued (at commit; with
    // notify = worker, the worker's after the commits it names), so one lost
    // with a killed connection was queued after the last one it got, L: its
    // commit was acknowledged after the commit of L's first (or last)
    // transaction was sent; and it was queued before the next connection's
    // LISTEN returned, so its commit was sent before that.
    const byFrom = new Map(txns.map((t) => [t.from, t]));
    const byTo = new Map(txns.map((t) => [t.to, t]));
    const windows = [];
    for (let i = 1; i < A.conns.length; i++) {
      const L = A.conns[i - 1].lastNote;
      const lt = L ? [byFrom.get(Number(L.from)), byTo.get(Number(L.to))].filter(Boolean) : [];
      const from = lt.length ? Math.max(...lt.map((t) => t.sent)) : -Infinity;
      windows.push([from, A.conns[i].listened === null ? Infinity : A.conns[i].listened]);
    }
    const mayBeLost = (t) => windows.some(([a, b]) => t.acked > a && t.sent < b);
    const covered = new Uint8Array(tail + 2);
    for (const n of A.notes) {
      if (n.payload && bad === null) for (let o = Number(n.payload.from); o <= Number(n.payload.to); o++) covered[o] = 1;
    }
    const uncovered = [];
    let excused = 0;
    for (const t of txns) {
      if (t.batches.every((b) => covered[b.first] && covered[b.last])) continue;
      if (mayBeLost(t)) excused++;
      else uncovered.push(t);
    }
    check(uncovered.length === 0,
      `${label}: every committed transaction is in a notification A received, but the ${excused} that may have ` +
      'committed while it was not listening',
      `${uncovered.length} transactions in no notification, e.g. ${uncovered.slice(0, 5).map((t) => `${t.txid} ${t.from}..${t.to}`)}`);
    if (mode === 'commit') {
      // one notification per committed transaction, exactly its range, types and txids
      const got = new Map();
      let wrong = null;
      for (const n of A.notes) {
        const p = n.payload || {};
        const t = byFrom.get(Number(p.from));
        const want = t && { stream, from: fmt(t.from), to: fmt(t.to), count: t.count, types: [TYPE], txids: [t.txid] };
        if (!t || canon(p) !== canon(want)) {
          wrong = wrong || `received ${n.raw}, expected ${JSON.stringify(want)}`;
        } else if (got.has(t.txid)) {
          wrong = wrong || `received twice: ${n.raw}`;
        }
        if (t) got.set(t.txid, true);
      }
      const missing = txns.filter((t) => !got.has(t.txid) && !mayBeLost(t));
      check(wrong === null && missing.length === 0,
        `${label}: A received one notification per committed transaction, with its from/to/count/types/txids ` +
        `(${got.size} of ${txns.length}; the others were committed while it was not listening)`,
        wrong || `${missing.length} transactions not notified, e.g. ${missing.slice(0, 3).map((t) => `${t.txid} ${t.from}..${t.to}`)}`);
      check(stats1.handed === stats0.handed && stats1.sent - stats0.sent >= txns.length,
        `${label}: the writers notified themselves (${stats1.sent - stats0.sent} sent, none handed to the worker)`,
        `sent ${stats1.sent - stats0.sent}, handed ${stats1.handed - stats0.handed}, committed transactions ${txns.length}`);
    } else {
      // coalesced: each notification spans whole transactions
      const cut = A.notes.find((n) => !n.payload || !byFrom.has(Number(n.payload.from)) || !byTo.has(Number(n.payload.to)));
      check(cut === undefined, `${label}: every notification spans whole committed transactions ` +
        `(${A.notes.length} notifications for ${txns.length} transactions)`, cut && cut.raw);
      check(stats1.handed - stats0.handed >= txns.length,
        `${label}: every commit was handed to the worker (${stats1.handed - stats0.handed} hand-overs, ` +
        `${stats1.sent - stats0.sent} notifications sent)`,
        `handed ${stats1.handed - stats0.handed}, committed transactions ${txns.length}`);
    }

    // --- subscriber B: the Node client's Subscription --------------------------
    if (B) {
      let bdiff = null;
      bEvents.forEach((e, i) => {
        const x = offsets[i] && expected[offsets[i]];
        const want = x && { ...x.event, headers: { ...x.event.headers, offset: fmt(offsets[i]) } };
        if (bdiff === null && (!x || canon(e) !== canon(want))) bdiff = `event ${i}: ${JSON.stringify(e)}, committed ${JSON.stringify(want)}`;
      });
      check(bCaughtUp && bEvents.length === offsets.length && bdiff === null,
        `${label}: B (clients/node Subscription) received exactly the committed events (${offsets.length}), once each, in offset order`,
        bdiff || `received ${bEvents.length} of ${offsets.length}, tail ${tail}, at ${B.lastOffset}`);
      check(killedB.length === 2 && B.reconnects === 2 && B.notifications <= stats1.sent - stats0.sent,
        `${label}: B's backend was terminated twice and it reconnected twice (once each: no more notifications than sent)`,
        `terminated ${killedB.length}, reconnects ${B.reconnects}, notifications ${B.notifications} of ` +
        `${stats1.sent - stats0.sent} sent`);
    }
  } finally {
    for (const f of cleanup) {
      try {
        await f();
      } catch (e) {
        check(false, `${label}: cleanup`, e.message);
      }
    }
  }
}

(async () => {
  const watchdog = setTimeout(() => {
    check(false, 'the test finished within 120 s', `still ${phase}`);
    console.log(summary());
    process.exit(1);
  }, 120000);
  const admin = new pg.Client({ database: MAIN_DB });
  admin.on('error', (e) => note(`${MAIN_DB} connection: ${e.message}`));
  try {
    await admin.connect();
    for (const mode of ['commit', 'worker']) {
      try {
        await scenario(mode, admin);
      } catch (err) {
        check(false, `notify=${mode}: the scenario ran`, err.stack);
      }
    }
  } catch (err) {
    check(false, `connect to ${MAIN_DB}`, err.stack);
  }
  await admin.end().catch(() => {});
  clearTimeout(watchdog);
  console.log(summary());
  process.exit(counts.failed > 0 ? 1 : 0);
})();
