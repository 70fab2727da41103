'use strict';
/*
 * test/t/subscriber.js -- the lossless subscriber protocol, end to end.
 *
 * For durable_state.notify = commit and = worker: four writer connections
 * apply WRITES batches of 1..5 events each (upserts, inserts and deletes on
 * shared keys, some with txids), rolling back about one transaction in ten
 * and one savepoint in ten, while one subscriber (the Node client's
 * Subscription: LISTEN, then changes(since => last) after every
 * notification and every reconnect) follows the stream.  Its backend is
 * terminated twice mid-run.  Checks:
 *   - the subscriber received exactly the log: offsets 1..tail, no gap, no
 *     duplicate, every event equal to the one in state.changes();
 *   - the log holds exactly the writers' committed events: nothing of a
 *     rolled-back transaction or savepoint, every committed one once, and
 *     each writer's events in its commit order;
 *   - it reconnected twice, and caught up after the last write through
 *     notifications alone (it never polls);
 *   - notification payloads are well formed: from..to ranges of count
 *     events within the log, disjoint; in worker mode the worker sent them.
 * Runs in $PGDATABASE (ds_test: the database the worker serves, which
 * worker mode needs), on streams of its own that it drops at the end.
 * Prints one line per check and `N passed, M failed`.
 */
const path = require('node:path');
const { DurableState } = require(path.join(__dirname, '../../clients/node'));
const pg = require(path.join(__dirname, '../../clients/node/node_modules/pg'));

const WRITERS = 4;
const WRITES = Number(process.env.DS_SUB_WRITES || 400); // transactions per writer
const KEYS = 60;

let passed = 0;
let failed = 0;
function check(ok, what, detail) {
  if (ok) {
    passed++;
    console.log(`ok - ${what}`);
  } else {
    failed++;
    console.log(`not ok - ${what}${detail ? `\n    ${detail}` : ''}`);
  }
}

/* A seeded PRNG, so that a failure can be replayed. */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function writer(id, stream, type, mode, progress) {
  const c = new pg.Client();
  await c.connect();
  await c.query(`SET durable_state.notify = ${mode}`);
  const rand = rng(1000 + id);
  const committed = []; // markers, in commit order
  let seq = 0;
  const batch = () => {
    const n = 1 + Math.floor(rand() * 5);
    const events = [];
    for (let i = 0; i < n; i++) {
      const key = `k${Math.floor(rand() * KEYS)}`;
      const r = rand();
      const op = r < 0.6 ? 'upsert' : r < 0.8 ? 'insert' : 'delete';
      const marker = `${id}:${seq++}`;
      const headers = { operation: op, txid: `${stream}-${marker}` };
      // a delete carries no value; its marker is in the txid
      events.push(op === 'delete' ? { type, key, headers } : { type, key, value: { m: marker }, headers });
    }
    return events;
  };
  const markers = (events) => events.map((e) => e.headers.txid.slice(stream.length + 1));
  for (let t = 0; t < WRITES; t++) {
    const r = rand();
    const a = batch();
    if (r < 0.1) {
      await c.query('BEGIN');
      await c.query('SELECT state.apply($1::jsonb, $2)', [JSON.stringify(a), stream]);
      await c.query('ROLLBACK');
    } else if (r < 0.2) {
      const b = batch();
      await c.query('BEGIN');
      await c.query('SELECT state.apply($1::jsonb, $2)', [JSON.stringify(a), stream]);
      await c.query('SAVEPOINT s');
      await c.query('SELECT state.apply($1::jsonb, $2)', [JSON.stringify(b), stream]);
      await c.query('ROLLBACK TO SAVEPOINT s');
      await c.query('COMMIT');
      committed.push(...markers(a));
    } else {
      await c.query('SELECT state.apply($1::jsonb, $2)', [JSON.stringify(a), stream]);
      committed.push(...markers(a));
    }
    progress[id] = t + 1;
  }
  await c.end();
  return committed;
}

async function scenario(mode) {
  const stream = `sub_${mode}_${process.pid}`;
  const type = 'item';
  const admin = new pg.Client();
  await admin.connect();
  await admin.query('CREATE EXTENSION IF NOT EXISTS durable_state');
  await admin.query("SELECT state.create_collection($1, $2, stream => $3, mode => 'lenient')",
    [`${stream}_items`, type, stream]);
  const stats0 = (await admin.query('SELECT notifications_handed_to_worker AS h, worker_state FROM state.stats')).rows[0];
  const started = Date.now();

  const ds = new DurableState({ stream });
  const received = [];
  const notes = [];
  const sub = ds.subscribe({
    onEvents: (events) => {
      received.push(...events);
    },
  });
  sub.on('notification', (p) => notes.push(p));
  sub.on('error', (e) => console.log(`# subscriber error: ${e.message}`));
  await new Promise((resolve, reject) => {
    sub.once('ready', resolve);
    setTimeout(() => reject(new Error('subscriber not ready in 10 s')), 10000);
  });

  // writers, and two terminations of the subscriber's backend mid-run
  const progress = new Array(WRITERS).fill(0);
  const writers = [];
  for (let w = 0; w < WRITERS; w++) writers.push(writer(w, stream, type, mode, progress));
  let kills = 0;
  const killer = (async () => {
    for (const at of [WRITES / 3, (2 * WRITES) / 3]) {
      while (Math.min(...progress) < at) await sleep(10);
      for (let i = 0; i < 200 && !sub.pid; i++) await sleep(10);
      const r = await admin.query('SELECT pg_terminate_backend($1) AS t', [sub.pid]);
      if (r.rows[0].t) kills++;
    }
  })();
  const committedBy = await Promise.all(writers);
  await killer;
  const writersDone = Date.now();

  const tail = (await admin.query('SELECT state.tail($1) AS t', [stream])).rows[0].t;
  const tailN = Number(tail);
  // the subscriber must catch up through notifications alone
  const deadline = Date.now() + 15000;
  while (sub.lastOffset !== tail && Date.now() < deadline) await sleep(20);
  const caughtUpMs = Date.now() - writersDone;
  const lastOffset = sub.lastOffset;
  await ds.close();

  const log = (await admin.query('SELECT "offset", event FROM state.changes($1, \'-1\', 1000000)', [stream])).rows;
  const stats1 = (await admin.query('SELECT notifications_handed_to_worker AS h FROM state.stats')).rows[0];

  const label = `notify=${mode}`;
  const committedTotal = committedBy.reduce((n, c) => n + c.length, 0);
  console.log(`# ${label}: ${WRITERS} writers, ${committedTotal} events committed, tail ${tailN}, ` +
    `${received.length} received, ${notes.length} notifications, ${sub.reconnects} reconnects, ` +
    `caught up ${caughtUpMs} ms after the last write, ${Date.now() - started} ms in all`);

  check(lastOffset === tail, `${label}: the subscriber caught up to the tail through notifications`,
    `last offset ${lastOffset}, tail ${tail}`);
  check(kills === 2 && sub.reconnects === 2, `${label}: its backend was terminated twice and it reconnected twice`,
    `terminated ${kills}, reconnects ${sub.reconnects}`);
  check(received.length === tailN && log.length === tailN,
    `${label}: it received ${tailN} events, as many as the log holds`,
    `received ${received.length}, log ${log.length}, tail ${tailN}`);
  let gap = null;
  received.forEach((e, i) => {
    if (gap === null && Number(e.headers.offset) !== i + 1) gap = `event ${i} has offset ${e.headers.offset}`;
  });
  check(gap === null, `${label}: offsets 1..${tailN} in order, no gap, no duplicate`, gap);
  let diff = null;
  for (let i = 0; i < Math.max(received.length, log.length) && diff === null; i++) {
    if (JSON.stringify(received[i]) !== JSON.stringify(log[i] && log[i].event)) {
      diff = `offset ${i + 1}: received ${JSON.stringify(received[i])}, log ${JSON.stringify(log[i] && log[i].event)}`;
    }
  }
  check(diff === null, `${label}: every received event equals the log's`, diff);

  // the log is exactly the committed events, each writer's in its order
  const logMarkers = log.map((r) => r.event.headers.txid.slice(stream.length + 1));
  const committedSet = new Set(committedBy.flat());
  const extra = logMarkers.filter((m) => !committedSet.has(m));
  check(extra.length === 0, `${label}: nothing of a rolled-back transaction or savepoint is in the log`,
    `${extra.length} unexpected, e.g. ${extra.slice(0, 5).join(', ')}`);
  check(logMarkers.length === committedTotal && new Set(logMarkers).size === logMarkers.length,
    `${label}: every committed event is in the log exactly once (${committedTotal})`,
    `log ${logMarkers.length} (${new Set(logMarkers).size} distinct), committed ${committedTotal}`);
  let order = null;
  for (let w = 0; w < WRITERS && order === null; w++) {
    const mine = logMarkers.filter((m) => m.startsWith(`${w}:`));
    if (JSON.stringify(mine) !== JSON.stringify(committedBy[w])) order = `writer ${w}`;
  }
  check(order === null, `${label}: each writer's events are in the log in its commit order`, order);

  // notifications
  const changeNotes = notes.filter((p) => p && p.from !== undefined);
  let bad = null;
  const ranges = [];
  for (const p of changeNotes) {
    const from = Number(p.from);
    const to = Number(p.to);
    if (p.stream !== stream || !(from >= 1 && to <= tailN && to - from + 1 === p.count) ||
        !Array.isArray(p.types) || !Array.isArray(p.txids)) {
      bad = JSON.stringify(p);
      break;
    }
    ranges.push([from, to]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length && bad === null; i++) {
    if (ranges[i][0] <= ranges[i - 1][1]) bad = `overlapping ranges ${ranges[i - 1]} and ${ranges[i]}`;
  }
  check(changeNotes.length > 0 && bad === null,
    `${label}: ${changeNotes.length} notifications, each a disjoint from..to range of count events`, bad);
  const handed = Number(stats1.h) - Number(stats0.h);
  if (mode === 'worker') {
    check(stats0.worker_state === 'running' && handed > 0,
      `${label}: the worker sent them (${handed} hand-overs)`, `worker ${stats0.worker_state}, handed ${handed}`);
  } else {
    check(handed === 0, `${label}: the writers sent them themselves`, `handed ${handed}`);
  }

  await admin.query('SELECT state.drop_collection($1, $2, drop_table => true)', [`${stream}_items`, stream]);
  await admin.query('DELETE FROM state.log WHERE stream_id = (SELECT id FROM state._streams WHERE name = $1)', [stream]);
  await admin.query('DELETE FROM state._txids WHERE stream_id = (SELECT id FROM state._streams WHERE name = $1)', [stream]);
  await admin.query('DELETE FROM state._streams WHERE name = $1', [stream]);
  await admin.end();
}

(async () => {
  for (const mode of ['commit', 'worker']) {
    try {
      await scenario(mode);
    } catch (err) {
      check(false, `notify=${mode}: the scenario ran`, err.stack);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
})();
