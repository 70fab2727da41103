#!/usr/bin/env node
'use strict';
/*
 * test/t/stress_one_stream.js -- many writers on ONE stream (issue 13):
 * offsets readers can trust while commits come in any order.
 *
 * For DS_STRESS_SECONDS (default 20; `make stress`: 300), in a database of
 * its own (ds_stress, dropped at the end), on stream "one" with a lenient
 * document collection (item, 80 keys), a strict one (slot, 20 keys) and
 * counters (ctr, 10 keys):
 *   - 8 writers, each on its own connection, run single-batch transactions
 *     on the shared keys: autocommit batches of 1..6 events; batches rolled
 *     back at once or after a pause; batches committed after a pause (so
 *     commits overtake each other); a batch in a savepoint rolled back, then
 *     another committed; strict inserts, updates and deletes that fail when
 *     the key is there / missing (23505, P0002); state.increment; state.put
 *     with expected_version (40001 on a lost race); big batches of 70 keys
 *     (more than durable_state.max_key_locks: the whole stream's lock); a
 *     rare reset.  Writer 8 runs with durable_state.max_key_locks = 2, so
 *     its bigger batches lock the whole stream too.  Each writer records
 *     what it committed (events and offsets as apply/put returned them) and
 *     the offsets of what it rolled back;
 *   - a reader polls state.changes(since => last) as fast as it can, in one
 *     statement with state.tail();
 *   - a snapshotter takes state.snapshot() every ~0.5 s (READ COMMITTED),
 *     every third one in REPEATABLE READ (where 40001 is allowed).
 * Before the run, two deterministic cases (reusedOffsets): a transaction's
 * batch after ROLLBACK TO SAVEPOINT gets offsets below those of its
 * rolled-back batch: state.tail must stay below it while it is in flight,
 * a snapshot meanwhile must be exact, and changes() after that tail must
 * return it once committed.  In the second case the offsets really are
 * handed out again: VACUUM removes the rolled-back rows and batches on 8
 * other streams of the same append partition evict the stream's remembered
 * tail (the bug fixed in 856e883: the flight started at the first batch's
 * offsets, and the tail passed over the later batch's lower ones).
 * Checks:
 *   - the writers met no error but the expected ones: no deadlock (every
 *     transaction holds one batch's key locks, taken in hash order), the
 *     strict failures only 23505/P0002, put's only 40001;
 *   - they really ran side by side: state._write_mode() = 'concurrent', and
 *     commits were acknowledged out of offset order;
 *   - the log: offsets distinct and increasing, the tail is the highest;
 *     every committed batch is in it at exactly the offsets apply returned,
 *     event for event; nothing rolled back is; every other event is a
 *     committed increment (as many as were made); every offset missing
 *     below the tail (a gap) was handed to a batch that was rolled back;
 *     each writer's batches are in its commit order;
 *   - per key, the log's order is the table's: each counter's values in the
 *     log go 1, 2, 3... (back to 1 after a reset), so no increment was lost
 *     or reordered;
 *   - the reader got every committed event exactly once, in offset order:
 *     its events are the final log, offset for offset (it never found a
 *     committed event at or below an offset it had read past); after a
 *     page shorter than max_events (the reader has then read up to
 *     state.tail of the same statement) no event came at or below that
 *     tail;
 *   - every snapshot is exact: snapshot-start and -end offsets agree, the
 *     inserts are the fold of the final log up to that offset; the offsets
 *     of successive READ COMMITTED snapshots never move back; none failed;
 *   - at the end, the tables are the fold of the whole log, and so is a
 *     last snapshot.
 * Environment: the PG* variables of the test cluster; DS_STRESS_SECONDS,
 * DS_STRESS_SEED.  Prints `ok - ...` / `not ok - ...` and `N passed, M failed`.
 */
const path = require('node:path');
const { check, note, summary, counts } = require(path.join(__dirname, '../node/tap.js'));
const { canon, bare } = require(path.join(__dirname, '../node/events.js'));
const { rng } = require(path.join(__dirname, '../node/prng.js'));

let pg;
try {
  pg = require(path.join(__dirname, '../node/node_modules/pg'));
} catch (e) {
  check(false, 'pg is installed in test/node', `${e.message}\n(run: cd test/node && npm ci)`);
  console.log(summary());
  process.exit(1);
}

const SECONDS = Number(process.env.DS_STRESS_SECONDS || 20);
const SEED = Number(process.env.DS_STRESS_SEED || Date.now() % 1000000);
const WRITERS = 8;
const DB = 'ds_stress';
const STREAM = 'one';
const ITEM_KEYS = 80;
const SLOT_KEYS = 20;
const CTR_KEYS = 10;
const BIG = 70; // distinct keys of a big batch: more than max_key_locks (64)
const PAGE = 1000; // the reader's max_events

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (n) => String(n).padStart(20, '0');

let phase = 'starting';
let stop = false; // the writers and the snapshotter stop at the deadline
let ackSeq = 0; // order in which commits were acknowledged to the writers

/* ---------------------------------------------------------------------------
 * Writers
 * ------------------------------------------------------------------------- */
async function writer(w, out) {
  const c = new pg.Client({ database: DB });
  c.on('error', () => {});
  await c.connect();
  const rand = rng(SEED * 16 + w);
  const int = (n) => Math.floor(rand() * n);
  const pick = (a) => a[int(a.length)];
  let n = 0; // this writer's event counter (in the values)
  let t = 0; // transaction counter (in the txids)
  if (w === WRITERS - 1) await c.query('SET durable_state.max_key_locks = 2');
  const item = (txid, key) => {
    const op = pick(['upsert', 'upsert', 'insert', 'update', 'delete']);
    const e = { type: 'item', key: key || `i${int(ITEM_KEYS)}`, headers: { operation: op, txid } };
    if (op !== 'delete') e.value = { w, n: n++ };
    return e;
  };
  const slotUpsert = (txid) => ({ type: 'slot', key: `s${int(SLOT_KEYS)}`, value: { w, n: n++ },
    headers: { operation: 'upsert', txid } });
  const batch = (txid) => {
    const k = 1 + int(6);
    const evs = [];
    for (let i = 0; i < k; i++) evs.push(rand() < 0.8 ? item(txid) : slotUpsert(txid));
    return evs;
  };
  const apply = async (events) => {
    const r = await c.query('SELECT applied, last_offset FROM state.apply($1::jsonb, $2)',
      [JSON.stringify(events), STREAM]);
    const last = Number(r.rows[0].last_offset);
    const applied = Number(r.rows[0].applied);
    if (applied !== events.length) throw new Error(`applied ${applied} of ${events.length} events`);
    return { events, first: last - applied + 1, last };
  };
  const committed = (b, txid) => out.committed.push({ ...b, txid, w, ack: ++ackSeq });
  const rolledBack = (b, txid) => out.rolledBack.push({ first: b.first, last: b.last, txid, w });
  const expected = (e, codes, what) => {
    if (e && codes.includes(e.code)) {
      out.failed[e.code] = (out.failed[e.code] || 0) + 1;
      return;
    }
    out.errors.push(`writer ${w}, ${what}: ${e && e.code} ${e && e.message}`);
  };
  while (!stop) {
    const txid = `w${w}.${t++}`;
    const r = rand();
    let shape = 'autocommit';
    try {
      if (r < 0.40) {
        committed(await apply(batch(txid)), txid);
      } else if (r < 0.47) {
        shape = 'rolled back';
        await c.query('BEGIN');
        const b = await apply(batch(txid));
        await c.query('ROLLBACK');
        rolledBack(b, txid);
      } else if (r < 0.52) {
        shape = 'rolled back after a pause';
        await c.query('BEGIN');
        const b = await apply(batch(txid));
        await sleep(2 + int(20));
        await c.query('ROLLBACK');
        rolledBack(b, txid);
      } else if (r < 0.62) {
        shape = 'committed after a pause';
        await c.query('BEGIN');
        const b = await apply(batch(txid));
        await sleep(2 + int(25));
        await c.query('COMMIT');
        committed(b, txid);
      } else if (r < 0.67) {
        shape = 'savepoint rolled back, then a batch committed';
        await c.query('BEGIN');
        await c.query('SAVEPOINT s');
        const x = await apply(batch(`${txid}.x`));
        await c.query('ROLLBACK TO SAVEPOINT s');
        const b = await apply(batch(txid));
        await c.query('COMMIT');
        rolledBack(x, `${txid}.x`);
        committed(b, txid);
      } else if (r < 0.77) {
        // strict: an insert fails if the key is there, update/delete if not
        shape = 'strict';
        const op = pick(['insert', 'insert', 'update', 'delete']);
        const e = { type: 'slot', key: `s${int(SLOT_KEYS)}`, headers: { operation: op, txid } };
        if (op !== 'delete') e.value = { w, n: n++ };
        const evs = rand() < 0.5 ? [item(txid), e] : [e];
        try {
          committed(await apply(evs), txid);
        } catch (err) {
          expected(err, ['23505', 'P0002'], shape);
        }
      } else if (r < 0.86) {
        shape = 'increment';
        const key = `c${int(CTR_KEYS)}`;
        await c.query("SELECT state.increment('ctr', $1, 'n', 1, $2)", [key, STREAM]);
        out.increments++;
      } else if (r < 0.93) {
        // compare-and-set: read the version, then put with it
        shape = 'put with expected_version';
        const key = `i${int(ITEM_KEYS)}`;
        const v = await c.query('SELECT coalesce((SELECT version FROM state.get_versioned($1, $2, $3)), 0) AS v',
          ['item', key, STREAM]);
        const value = { w, n: n++, cas: true };
        try {
          const p = await c.query('SELECT state.put($1, $2, $3::jsonb, NULL, $4, $5) AS off',
            ['item', key, JSON.stringify(value), STREAM, Number(v.rows[0].v)]);
          const off = Number(p.rows[0].off);
          committed({ events: [{ type: 'item', key, value, headers: { operation: 'upsert' } }], first: off, last: off }, null);
        } catch (err) {
          expected(err, ['40001'], shape);
        }
      } else if (r < 0.999) {
        // more distinct keys than max_key_locks: the batch locks the whole stream
        shape = 'big batch';
        const start = int(ITEM_KEYS);
        const evs = [];
        for (let i = 0; i < BIG; i++) evs.push(item(txid, `i${(start + i) % ITEM_KEYS}`));
        if (rand() < 0.3) {
          await c.query('BEGIN');
          const b = await apply(evs);
          await c.query('ROLLBACK');
          rolledBack(b, txid);
        } else {
          committed(await apply(evs), txid);
        }
      } else {
        shape = 'reset';
        const b = await apply([{ headers: { control: 'reset' } }]);
        committed(b, txid);
        out.resets++;
      }
    } catch (err) {
      expected(err, [], shape);
      await c.query('ROLLBACK').catch(() => {});
    }
    out.transactions++;
  }
  await c.end().catch(() => {});
}

/* ---------------------------------------------------------------------------
 * The reader: changes() after the last offset, with the tail of the same
 * statement
 * ------------------------------------------------------------------------- */
async function reader(state) {
  const c = new pg.Client({ database: DB });
  c.on('error', () => {});
  await c.connect();
  let lastTail = 0;
  while (!state.done) {
    const r = await c.query(`SELECT state.tail($1)::bigint AS tail,
        (SELECT coalesce(jsonb_agg(jsonb_build_array(c."offset", c.event) ORDER BY c."offset"), '[]')
           FROM state.changes($1, $2, $3) c) AS rows`, [STREAM, state.last, PAGE]);
    const tail = Number(r.rows[0].tail);
    const rows = r.rows[0].rows;
    state.polls++;
    // the tail may move back over offsets of batches that ended without
    // committing (a later row may record a lower stable offset); the check
    // below (upTo) makes sure nothing committed ever comes there
    if (tail < lastTail) state.tailBack++;
    lastTail = Math.max(lastTail, tail);
    let prev = state.last === '-1' ? 0 : Number(state.last);
    for (const [off, ev] of rows) {
      const o = Number(off);
      if (o <= prev && !state.order) state.order = `offset ${off} read after ${fmt(prev)}`;
      if (ev.headers.offset !== off && !state.order) state.order = `offset ${off} with headers.offset ${ev.headers.offset}`;
      // after a short page the reader has read everything up to that statement's tail
      if (o <= state.upTo && !state.belowTail) {
        state.belowTail = `offset ${off} read after a page that read up to the tail ${state.upTo}`;
      }
      prev = o;
      state.events.push({ offset: o, event: bare(ev) });
    }
    // a page shorter than max_events read everything up to the stable tail of
    // the same snapshot (the offsets after its last event up to the tail are
    // gaps of batches that ended without committing).  A page may end beyond
    // that tail: a batch that held the tail back may have rolled back by the
    // time changes() looked.
    if (rows.length < PAGE) state.upTo = Math.max(state.upTo, tail);
    if (rows.length > 0) state.last = rows[rows.length - 1][0];
    state.tail = lastTail;
    if (rows.length < PAGE) await sleep(rows.length === 0 ? 2 : 0);
  }
  await c.end().catch(() => {});
}

/* ---------------------------------------------------------------------------
 * The snapshotter
 * ------------------------------------------------------------------------- */
async function takeSnapshot(c, rr, stream = STREAM) {
  const t0 = Date.now();
  if (rr) await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  try {
    const r = await c.query('SELECT s AS ev FROM state.snapshot($1) s', [stream]);
    if (rr) await c.query('COMMIT');
    const evs = r.rows.map((x) => x.ev);
    const start = evs[0];
    const end = evs[evs.length - 1];
    const inserts = evs.slice(1, -1);
    return {
      rr,
      ms: Date.now() - t0,
      start: start && start.headers && start.headers.control === 'snapshot-start' ? Number(start.headers.offset) : null,
      end: end && end.headers && end.headers.control === 'snapshot-end' ? Number(end.headers.offset) : null,
      rows: new Map(inserts.map((e) => [`${e.type}\u0000${e.key}`, canon(e.value)])),
      badInsert: inserts.find((e) => !e.headers || e.headers.operation !== 'insert' || e.type === undefined) || null,
    };
  } catch (err) {
    if (rr) await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

async function snapshotter(state) {
  const c = new pg.Client({ database: DB });
  c.on('error', () => {});
  await c.connect();
  for (let i = 0; !stop; i++) {
    await sleep(300 + Math.floor(Math.random() * 400));
    if (stop) break;
    const rr = i % 3 === 2;
    try {
      state.snaps.push(await takeSnapshot(c, rr));
    } catch (err) {
      if (rr && err.code === '40001') state.rrRetries++;
      else state.errors.push(`${rr ? 'REPEATABLE READ' : 'READ COMMITTED'} snapshot: ${err.code} ${err.message}`);
    }
  }
  await c.end().catch(() => {});
}

/* ---------------------------------------------------------------------------
 * The fold of the log
 * ------------------------------------------------------------------------- */
function foldStep(map, ev) {
  const h = ev.headers || {};
  if (h.control === 'reset') map.clear();
  else if (h.control) return;
  else if (h.operation === 'delete') map.delete(`${ev.type}\u0000${ev.key}`);
  else map.set(`${ev.type}\u0000${ev.key}`, canon(ev.value));
}
function mapDiff(got, want) {
  const out = [];
  for (const [k, v] of want) if (got.get(k) !== v) out.push(`${k.replace('\u0000', '/')}: got ${got.get(k)}, want ${v}`);
  for (const [k, v] of got) if (!want.has(k)) out.push(`${k.replace('\u0000', '/')}: got ${v}, not in the fold`);
  return out;
}

/* ---------------------------------------------------------------------------
 * Offsets reused under a transaction's flight (deterministic, before the
 * run): batch y of transaction Y takes 2-3, batch x of transaction A takes
 * 4-5 in a savepoint; Y rolls back, A rolls back to the savepoint; its next
 * batch b gets offsets after a tail read again (with evict: VACUUM
 * state.log removes the rows of y and x, and one batch on each of 8 other
 * streams whose append lock is the same partition makes the lock forget
 * this stream's tail, so the tail is read from the log, 1, and b gets 2-3,
 * below x); C commits after b.  While A is open, state.tail must stay below
 * b, and a snapshot must wait for A (or leave b's offsets after its end);
 * after A commits, changes() after that tail must return b's events.
 * ------------------------------------------------------------------------- */
const TAILS_PER_PARTITION = 8; // DS_TAILS_PER_PARTITION in src/inflight.c
/* The append partition of a stream id (append_partition() in src/inflight.c:
 * hash_combine of hash_bytes_uint32 of the database oid and of the id, mod 64). */
const PARTITION_SQL = `SELECT ((h.a # ((h.b + 2654435769 + ((h.a << 6) & 4294967295) + (h.a >> 2)) & 4294967295)) % 64)::int AS p
  FROM (SELECT (hashint4((SELECT oid FROM pg_database WHERE datname = current_database())::int)::bigint & 4294967295) AS a,
               (hashint4($1::int)::bigint & 4294967295) AS b) h`;
async function reusedOffsets(S, evict) {
  const cl = [];
  const conn = async () => {
    const x = new pg.Client({ database: DB });
    x.on('error', () => {});
    await x.connect();
    cl.push(x);
    return x;
  };
  const evs = (k, n) => JSON.stringify(Array.from({ length: n }, (_, i) => ({
    type: `${S}_item`, key: `${k}${i}`, value: { k, i }, headers: { operation: 'upsert' } })));
  const apply = async (x, k, n) => Number((await x.query('SELECT last_offset FROM state.apply($1::jsonb, $2)',
    [evs(k, n), S])).rows[0].last_offset);
  try {
    const [setup, Y, A, C, R] = [await conn(), await conn(), await conn(), await conn(), await conn()];
    await setup.query("SELECT state.create_collection($1 || '_items', $1 || '_item', stream => $1, mode => 'lenient')", [S]);
    await apply(setup, 'z', 1);
    await Y.query('BEGIN');
    const y = await apply(Y, 'y', 2);
    await A.query('BEGIN');
    await A.query('SAVEPOINT s');
    const x = await apply(A, 'x', 2);
    await Y.query('ROLLBACK');
    await A.query('ROLLBACK TO SAVEPOINT s');
    if (evict) {
      // streams whose append lock is this stream's partition: as many as it
      // remembers tails, each created with the id it needs
      const partOf = async (id) => (await setup.query(PARTITION_SQL, [id])).rows[0].p;
      const sid = (await setup.query('SELECT id FROM state._streams WHERE name = $1', [S])).rows[0].id;
      const p = await partOf(sid);
      const others = [];
      for (let id = sid + 1; others.length < TAILS_PER_PARTITION; id++) {
        if (await partOf(id) !== p) continue;
        await setup.query("SELECT setval(pg_get_serial_sequence('state._streams', 'id'), $1 - 1)", [id]);
        const name = `${S}_o${id}`;
        await setup.query("SELECT state.create_collection($1, $1 || 't', stream => $1, mode => 'lenient')", [name]);
        const got = (await setup.query('SELECT id FROM state._streams WHERE name = $1', [name])).rows[0].id;
        if (got !== id) throw new Error(`stream ${name} got id ${got}, not ${id}`);
        others.push(name);
      }
      await setup.query('VACUUM state.log');
      for (const o of others) {
        await setup.query('SELECT state.apply($1::jsonb, $2)',
          [JSON.stringify([{ type: `${o}t`, key: 'o', value: {}, headers: { operation: 'upsert' } }]), o]);
      }
      note(`${S}: VACUUM state.log, then a batch on each of ${others.length} other streams of append partition ${p}`);
    }
    const b = await apply(A, 'b', 2);
    if (evict) {
      check(b <= y, `${S}: once the rolled-back rows are vacuumed and the remembered tail evicted, b's offsets ` +
        `are handed out again, below x's (the case under test happened)`, `y ${y - 1}..${y}, x ${x - 1}..${x}, b ${b - 1}..${b}`);
    }
    const c = await apply(C, 'c', 1);
    note(`${S}: y ${y - 1}..${y} rolled back, x ${x - 1}..${x} rolled back to a savepoint, ` +
      `then b of the same transaction got ${b - 1}..${b}, c committed ${c}`);
    // the tail, and what a reader sees up to it, in one statement
    const r = (await R.query(`SELECT state.tail($1)::bigint AS t,
        (SELECT coalesce(jsonb_agg(c."offset"), '[]') FROM state.changes($1, '-1') c) AS seen`, [S])).rows[0];
    const tail = Number(r.t);
    const seen = new Set(r.seen.map(Number));
    check(tail < b - 1, `${S}: while b (${b - 1}..${b}) is in flight, state.tail stays below it, even though its ` +
      'transaction registered a higher offset first (x, rolled back to a savepoint)', `state.tail = ${tail}`);
    const snap = takeSnapshot(R, false, S);
    await sleep(300);
    await A.query('COMMIT');
    const sn = await snap;
    const log = (await setup.query('SELECT seq::bigint AS seq, event FROM state.log_events WHERE stream = $1 ORDER BY seq', [S])).rows;
    const fold = new Map();
    for (const e of log) if (Number(e.seq) <= sn.end) foldStep(fold, e.event);
    const d = mapDiff(sn.rows, fold);
    check(sn.start === sn.end && d.length === 0, `${S}: a snapshot taken meanwhile is exact (snapshot-end ${sn.end})`, d.join('; '));
    const late = log.map((e) => Number(e.seq)).filter((o) => o <= tail && !seen.has(o));
    check(late.length === 0, `${S}: no event committed after the reader was told the tail (${tail}) is at or below it`,
      `committed later at ${canon(late)}`);
    const after = (await R.query('SELECT "offset" FROM state.changes($1, $2)', [S, fmt(tail)])).rows.map((x) => Number(x.offset));
    const want = log.map((e) => Number(e.seq)).filter((o) => o > tail);
    check(canon(after) === canon(want), `${S}: after A commits, changes() after that tail returns every event logged above it`,
      `got ${canon(after)}, logged ${canon(want)}`);
  } finally {
    for (const x of cl) await x.end().catch(() => {});
  }
}

async function main() {
  note(`${WRITERS} writers on one stream for ${SECONDS} s, seed ${SEED} (DS_STRESS_SEED)`);
  const admin = new pg.Client();
  admin.on('error', () => {});
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  const db = new pg.Client({ database: DB });
  db.on('error', () => {});
  try {
    await db.connect();
    await db.query('SET client_min_messages = warning');
    await db.query('CREATE EXTENSION durable_state');
    await db.query(`SELECT state.create_collection('items', 'item', stream => $1, mode => 'lenient'),
                           state.create_collection('slots', 'slot', stream => $1),
                           state.create_collection('ctrs', 'ctr', stream => $1, mode => 'lenient')`, [STREAM]);
    const mode = (await db.query('SELECT state._write_mode() AS m')).rows[0].m;
    if (!check(mode === 'concurrent', 'writers of one stream run side by side here (state._write_mode() = concurrent)',
      `write mode ${mode}`)) return;
    phase = 'offsets reused under a flight';
    await reusedOffsets('reuse', false);
    phase = 'offsets handed out again after eviction and VACUUM';
    await reusedOffsets('evict', true);

    // --- the run ---------------------------------------------------------
    phase = 'writing';
    const outs = [];
    const rd = { last: '-1', events: [], polls: 0, tail: 0, upTo: 0, done: false, order: null, belowTail: null, tailBack: 0 };
    const sn = { snaps: [], errors: [], rrRetries: 0 };
    // a failure of one of them is checked below, not an unhandled rejection
    const readerP = reader(rd).catch((e) => { rd.crash = e; });
    const snapP = snapshotter(sn).catch((e) => { sn.crash = e; });
    const writersP = [];
    for (let w = 0; w < WRITERS; w++) {
      const out = { committed: [], rolledBack: [], failed: {}, errors: [], increments: 0, resets: 0, transactions: 0 };
      outs.push(out);
      writersP.push(writer(w, out).catch((e) => { out.crash = e; }));
    }
    const t0 = Date.now();
    await sleep(SECONDS * 1000);
    stop = true;
    await Promise.all(writersP);
    await snapP;
    const writeMs = Date.now() - t0;
    phase = 'catching up';
    const tail = Number((await db.query('SELECT state.tail($1)::bigint AS t', [STREAM])).rows[0].t);
    const end = Date.now() + 30000;
    while (rd.tail < tail && !rd.crash && Date.now() < end) await sleep(10);
    await sleep(50); // one more poll past the tail
    rd.done = true;
    await readerP;
    phase = 'checking';

    const crashed = [...outs.map((o) => o.crash), rd.crash, sn.crash].filter(Boolean).map((e) => e.stack);
    check(crashed.length === 0, `the ${WRITERS} writers, the reader and the snapshotter ran to the end`, crashed.join('\n'));
    const committed = outs.flatMap((o) => o.committed);
    const rolledBack = outs.flatMap((o) => o.rolledBack);
    const errors = outs.flatMap((o) => o.errors);
    const failed = {};
    for (const o of outs) for (const [k, v] of Object.entries(o.failed)) failed[k] = (failed[k] || 0) + v;
    const increments = outs.reduce((a, o) => a + o.increments, 0);
    const resets = outs.reduce((a, o) => a + o.resets, 0);
    const transactions = outs.reduce((a, o) => a + o.transactions, 0);
    const committedEvents = committed.reduce((a, b) => a + b.events.length, 0);
    note(`${transactions} transactions in ${writeMs} ms (${Math.round(transactions * 1000 / writeMs)}/s): ` +
      `${committed.length} batches committed (${committedEvents} events), ${increments} increments, ` +
      `${resets} resets, ${rolledBack.length} batches rolled back, expected failures ${JSON.stringify(failed)}`);
    check(errors.length === 0, 'the writers met no error but the expected ones (no deadlock: 40P01)',
      `${errors.length} errors, e.g.\n${errors.slice(0, 5).join('\n')}`);
    check((failed['23505'] || 0) > 0 && (failed.P0002 || 0) > 0,
      'strict inserts of existing keys failed with 23505, updates and deletes of missing keys with P0002',
      JSON.stringify(failed));

    // --- the log ----------------------------------------------------------
    const log = (await db.query(`SELECT seq::bigint AS seq, event FROM state.log_events
                                  WHERE stream = $1 ORDER BY seq`, [STREAM])).rows
      .map((x) => ({ seq: Number(x.seq), event: x.event }));
    let dupSeq = null;
    for (let i = 1; i < log.length; i++) if (log[i].seq <= log[i - 1].seq && !dupSeq) dupSeq = log[i].seq;
    const maxSeq = log.length ? log[log.length - 1].seq : 0;
    check(dupSeq === null && maxSeq === tail,
      `the log's offsets are distinct and increasing, the tail (${tail}) is the highest`,
      dupSeq !== null ? `offset ${dupSeq} twice` : `highest offset ${maxSeq}, tail ${tail}`);
    const bySeq = new Map(log.map((x) => [x.seq, x.event]));
    // every committed batch, event for event at the offsets apply returned
    let wrong = null;
    const mine = new Set();
    for (const b of committed) {
      if (b.last - b.first + 1 !== b.events.length) {
        wrong = wrong || `${b.txid}: offsets ${b.first}..${b.last} for ${b.events.length} events`;
        continue;
      }
      b.events.forEach((ev, i) => {
        const o = b.first + i;
        const got = bySeq.get(o);
        if (mine.has(o)) wrong = wrong || `offset ${o} returned to two committed batches`;
        mine.add(o);
        if (!got || canon(got) !== canon(ev)) {
          wrong = wrong || `offset ${o} (${b.txid || 'put'}): logged ${JSON.stringify(got)}, committed ${JSON.stringify(ev)}`;
        }
      });
    }
    check(wrong === null, `every committed batch (${committed.length}) is in the log at the offsets apply/put returned, event for event`, wrong);
    const rbTxids = new Set(rolledBack.map((b) => b.txid));
    const leaked = log.filter((x) => rbTxids.has(x.event.headers && x.event.headers.txid));
    check(leaked.length === 0, `nothing of the ${rolledBack.length} rolled-back batches is in the log`,
      leaked.slice(0, 3).map((x) => `${x.seq}: ${JSON.stringify(x.event)}`).join('\n'));
    const others = log.filter((x) => !mine.has(x.seq));
    const strange = others.filter((x) => x.event.type !== 'ctr' || !x.event.headers || x.event.headers.operation !== 'upsert');
    check(strange.length === 0 && others.length === increments,
      `every other event of the log is a committed increment (${others.length} of ${increments})`,
      strange.length ? `not committed by a writer: ${strange.slice(0, 3).map((x) => `${x.seq}: ${JSON.stringify(x.event)}`).join('\n')}`
        : `${others.length} increments logged, ${increments} made`);
    // gaps: offsets below the tail with no committed event
    const rbOffsets = new Set();
    for (const b of rolledBack) for (let o = b.first; o <= b.last; o++) rbOffsets.add(o);
    const gaps = [];
    for (let o = 1; o <= tail; o++) if (!bySeq.has(o)) gaps.push(o);
    const unexplained = gaps.filter((o) => !rbOffsets.has(o));
    note(`${log.length} events logged up to offset ${tail}: ${gaps.length} offsets left as gaps by rolled-back batches`);
    check(unexplained.length === 0 && gaps.length > 0,
      `every gap in the offsets (${gaps.length}) was handed to a batch that was rolled back`,
      `${unexplained.length} gap offsets no rolled-back batch got, e.g. ${unexplained.slice(0, 10)}`);
    // each writer's batches in its commit order
    let wOrder = null;
    for (let w = 0; w < WRITERS && !wOrder; w++) {
      const bs = outs[w].committed;
      for (let i = 1; i < bs.length && !wOrder; i++) {
        if (bs[i].first <= bs[i - 1].last) wOrder = `writer ${w}: ${bs[i].txid} at ${bs[i].first} after ${bs[i - 1].txid} at ${bs[i - 1].last}`;
      }
    }
    check(wOrder === null, "each writer's batches have increasing offsets, in its commit order", wOrder);
    // commits overtook each other: a batch acknowledged before one with a lower offset
    const sorted = [...committed].sort((a, b) => a.first - b.first);
    let maxAck = 0;
    let overtaken = 0;
    for (const b of sorted) {
      if (b.ack < maxAck) overtaken++;
      maxAck = Math.max(maxAck, b.ack);
    }
    check(overtaken > 0, `commits came out of offset order (${overtaken} batches acknowledged before a batch with a lower offset)`);
    // per key: counters go 1, 2, 3... in the log (back to 1 after a reset)
    const ctr = new Map();
    let ctrBad = null;
    for (const x of log) {
      const h = x.event.headers || {};
      if (h.control === 'reset') ctr.clear();
      if (x.event.type !== 'ctr') continue;
      const want = (ctr.get(x.event.key) || 0) + 1;
      const got = x.event.value && x.event.value.n;
      if (got !== want && !ctrBad) ctrBad = `offset ${x.seq}: ${x.event.key} = ${got}, want ${want}`;
      ctr.set(x.event.key, got);
    }
    check(ctrBad === null, 'per key, the log is in the order the table changed: each counter counts 1, 2, 3... in the log', ctrBad);

    // --- the reader -------------------------------------------------------
    note(`reader: ${rd.events.length} events in ${rd.polls} polls; state.tail moved back ${rd.tailBack} times ` +
      '(over offsets of batches that ended without committing)');
    check(rd.order === null, 'the reader got strictly increasing offsets, each with its headers.offset', rd.order);
    let miss = null;
    for (let i = 0, j = 0; (i < log.length || j < rd.events.length) && !miss; i++, j++) {
      const a = log[i];
      const b = rd.events[j];
      if (!a) miss = `it read ${b.offset} beyond the log`;
      else if (!b) miss = `it did not read ${a.seq} (or anything after)`;
      else if (a.seq !== b.offset) {
        miss = a.seq < b.offset ? `it never read committed offset ${a.seq}: it went from ` +
          `${j > 0 ? rd.events[j - 1].offset : 'the start'} to ${b.offset}` : `it read ${b.offset}, which is not in the log`;
      } else if (canon(a.event) !== canon(b.event)) miss = `offset ${a.seq}: read ${JSON.stringify(b.event)}, logged ${JSON.stringify(a.event)}`;
    }
    check(miss === null && rd.events.length === log.length,
      `the reader got every committed event exactly once, in offset order (${rd.events.length} of ${log.length})`, miss);
    check(rd.belowTail === null, 'after a page shorter than max_events, no event was ever read at or below ' +
      'state.tail of the same statement', rd.belowTail);

    // --- snapshots --------------------------------------------------------
    const rc = sn.snaps.filter((s) => !s.rr);
    const rr = sn.snaps.filter((s) => s.rr);
    note(`${rc.length} READ COMMITTED snapshots (max ${Math.max(0, ...rc.map((s) => s.ms))} ms), ` +
      `${rr.length} REPEATABLE READ ones (${sn.rrRetries} more failed with 40001)`);
    check(sn.errors.length === 0 && rc.length >= Math.min(5, SECONDS), `the snapshots did not fail (${rc.length} taken in READ COMMITTED)`,
      sn.errors.slice(0, 5).join('\n'));
    let back = null;
    for (let i = 1; i < rc.length; i++) if (rc[i].end < rc[i - 1].end && !back) back = `${rc[i].end} after ${rc[i - 1].end}`;
    check(back === null, 'successive READ COMMITTED snapshots never moved back', back);
    // fold the log once, comparing each snapshot at its offset
    const snaps = [...sn.snaps].sort((a, b) => a.end - b.end);
    const fold = new Map();
    let inexact = null;
    let li = 0;
    for (const s of snaps) {
      if (s.start === null || s.end === null || s.start !== s.end || s.end > tail || s.badInsert) {
        inexact = inexact || `snapshot-start ${s.start}, -end ${s.end}, tail ${tail}${s.badInsert ? `, insert ${JSON.stringify(s.badInsert)}` : ''}`;
        continue;
      }
      while (li < log.length && log[li].seq <= s.end) foldStep(fold, log[li++].event);
      const d = mapDiff(s.rows, fold);
      if (d.length) inexact = inexact || `${s.rr ? 'REPEATABLE READ' : 'READ COMMITTED'} snapshot at ${s.end}: ${d.length} rows differ from the fold of the log up to it, e.g. ${d.slice(0, 3).join('; ')}`;
    }
    check(inexact === null && snaps.length > 0, `every snapshot (${snaps.length}) is exact: its inserts are the fold of the log up to its snapshot-end offset`, inexact);

    // --- the end state ----------------------------------------------------
    const all = new Map();
    for (const x of log) foldStep(all, x.event);
    const tables = new Map();
    for (const type of ['item', 'slot', 'ctr']) {
      const r = await db.query('SELECT key, value FROM state.get_type($1, $2)', [type, STREAM]);
      for (const row of r.rows) tables.set(`${type}\u0000${row.key}`, canon(row.value));
    }
    const td = mapDiff(tables, all);
    check(td.length === 0, `the tables (${tables.size} rows) are the fold of the whole log`, td.slice(0, 5).join('\n'));
    const last = await takeSnapshot(db, false);
    const ld = mapDiff(last.rows, all);
    check(last.end === tail && last.start === tail && ld.length === 0, `a last snapshot is at the tail (${tail}) and is the fold of the whole log`,
      `snapshot-end ${last.end}, ${ld.length} rows differ: ${ld.slice(0, 3).join('; ')}`);
  } finally {
    await db.end().catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch((e) => check(false, `drop database ${DB}`, e.message));
    await admin.end().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  check(false, `the test finished within ${SECONDS + 180} s`, `still ${phase}`);
  console.log(summary());
  process.exit(1);
}, (SECONDS + 180) * 1000);
main().catch((e) => check(false, 'the test ran', e.stack)).finally(() => {
  clearTimeout(watchdog);
  console.log(summary());
  process.exit(counts.failed > 0 || counts.passed === 0 ? 1 : 0);
});
