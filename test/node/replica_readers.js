#!/usr/bin/env node
'use strict';
/*
 * test/node/replica_readers.js -- part 2c of test/t/replica.sh: concurrent
 * writers of one stream on the primary, a reader on the hot standby.
 *
 * For DS_REPLICA_CONC_SECONDS (default 5), on stream "rconc" of the
 * primary (a lenient collection, 40 shared keys):
 *   - 4 writers, each on its own connection, run transactions of one batch
 *     of 1..5 upserts and deletes: autocommit; committed after a pause (so
 *     commits overtake each other); rolled back at once or after a pause; a
 *     batch in a savepoint rolled back, then another committed.  40P01 and
 *     40001 count as a rollback (a client would retry).  Each records what
 *     it committed (events, offsets apply returned) and rolled back;
 *   - a reader on the standby polls state.changes(since => last) with
 *     state.tail() in one statement, as fast as it can;
 *   - a snapshotter on the standby takes state.snapshot() every ~0.3 s.
 * Then the standby replays everything the primary wrote, and the reader
 * reads until it is at the standby's tail.  Checks:
 *   - the writers met no other error, and commits came out of offset order;
 *   - the primary's log: every committed batch at the offsets apply
 *     returned, nothing rolled back, no offset twice;
 *   - the reader read strictly increasing offsets: it never found a
 *     committed event at or below what it had already read; after a page
 *     shorter than max_events, nothing came at or below that statement's
 *     tail; it read exactly the primary's log, event for event;
 *   - the fold of what it read equals the standby's tables (and the
 *     primary's); state.tail on the standby is the last offset read and the
 *     primary's tail;
 *   - every snapshot taken on the standby is exact (its inserts are the
 *     fold of the log up to its snapshot-end offset), and a last one is at
 *     the tail.
 * Environment: PG* for the primary, DS_STANDBY_HOST / DS_STANDBY_PORT for
 * the standby, DS_REPLICA_DB (the database on both), DS_REPLICA_CONC_SECONDS.
 * Prints `ok - ...` / `not ok - ...` and `N passed, M failed`.
 */
const path = require('node:path');
const { check, note, summary, counts } = require(path.join(__dirname, 'tap.js'));
const { canon, bare } = require(path.join(__dirname, 'events.js'));
const { rng } = require(path.join(__dirname, 'prng.js'));
const pg = require(path.join(__dirname, 'node_modules/pg'));

const SECONDS = Number(process.env.DS_REPLICA_CONC_SECONDS || 5);
const DB = process.env.DS_REPLICA_DB || 'ds_replica';
const STANDBY = { host: process.env.DS_STANDBY_HOST, port: Number(process.env.DS_STANDBY_PORT), database: DB };
const STREAM = 'rconc';
const TYPE = 'cthing';
const WRITERS = 4;
const KEYS = 40;
const PAGE = 200;
const RETRYABLE = ['40P01', '40001'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function foldStep(map, ev) {
  const h = ev.headers || {};
  if (h.control === 'reset') map.clear();
  else if (h.control) return;
  else if (h.operation === 'delete') map.delete(ev.key);
  else map.set(ev.key, canon(ev.value));
}
function mapDiff(got, want) {
  const out = [];
  for (const [k, v] of want) if (got.get(k) !== v) out.push(`${k}: got ${got.get(k)}, want ${v}`);
  for (const [k, v] of got) if (!want.has(k)) out.push(`${k}: got ${v}, not in the fold`);
  return out;
}
async function connect(opts) {
  const c = new pg.Client(opts);
  c.on('error', () => {});
  await c.connect();
  return c;
}

let stop = false;
let ackSeq = 0;

async function writer(w, out) {
  const c = await connect({ database: DB });
  const rand = rng(7000 + w);
  const int = (n) => Math.floor(rand() * n);
  let n = 0;
  const batch = (txid) => Array.from({ length: 1 + int(5) }, () => {
    const key = `k${int(KEYS)}`;
    return rand() < 0.8 ? { type: TYPE, key, value: { w, n: n++ }, headers: { operation: 'upsert', txid } }
      : { type: TYPE, key, headers: { operation: 'delete', txid } };
  });
  const apply = async (events) => {
    const r = await c.query('SELECT applied, last_offset FROM state.apply($1::jsonb, $2)', [JSON.stringify(events), STREAM]);
    const last = Number(r.rows[0].last_offset);
    return { events, first: last - Number(r.rows[0].applied) + 1, last };
  };
  for (let t = 0; !stop; t++) {
    const txid = `c${w}.${t}`;
    const r = rand();
    try {
      if (r < 0.5) {
        out.committed.push({ ...(await apply(batch(txid))), ack: ++ackSeq });
      } else if (r < 0.7) {
        await c.query('BEGIN');
        const b = await apply(batch(txid));
        await sleep(2 + int(15));
        await c.query('COMMIT');
        out.committed.push({ ...b, ack: ++ackSeq });
      } else if (r < 0.85) {
        await c.query('BEGIN');
        await apply(batch(txid));
        if (rand() < 0.5) await sleep(2 + int(15));
        await c.query('ROLLBACK');
        out.rolledBack.push(txid);
      } else {
        await c.query('BEGIN');
        await c.query('SAVEPOINT s');
        await apply(batch(`${txid}.x`));
        await c.query('ROLLBACK TO SAVEPOINT s');
        out.rolledBack.push(`${txid}.x`);
        const b = await apply(batch(txid));
        await c.query('COMMIT');
        out.committed.push({ ...b, ack: ++ackSeq });
      }
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      out.rolledBack.push(txid, `${txid}.x`);
      if (RETRYABLE.includes(e.code)) out.retryable++;
      else out.errors.push(`writer ${w}: ${e.code} ${e.message}`);
    }
  }
  await c.end().catch(() => {});
}

/* The reader on the standby: changes() after the last offset, with the tail of the same statement. */
async function poll(c, rd) {
  let r;
  for (;;) {
    try {
      r = await c.query(`SELECT state.tail($1)::bigint AS tail,
          (SELECT coalesce(jsonb_agg(jsonb_build_array(c."offset", c.event) ORDER BY c."offset"), '[]')
             FROM state.changes($1, $2, $3) c) AS rows`, [STREAM, rd.last, PAGE]);
      break;
    } catch (e) {
      // cancelled by a conflict with recovery (40001): a client reads again
      if (!/conflict with recovery/.test(e.message)) throw e;
      rd.cancelled = (rd.cancelled || 0) + 1;
    }
  }
  const tail = Number(r.rows[0].tail);
  const rows = r.rows[0].rows;
  rd.polls++;
  let prev = rd.last === '-1' ? 0 : Number(rd.last);
  for (const [off, ev] of rows) {
    const o = Number(off);
    if (o <= prev && !rd.order) rd.order = `offset ${off} read after ${prev}`;
    if (o <= rd.upTo && !rd.belowTail) rd.belowTail = `offset ${off} read after a short page that read up to the tail ${rd.upTo}`;
    prev = o;
    rd.events.push({ offset: o, event: bare(ev) });
  }
  if (rows.length < PAGE) rd.upTo = Math.max(rd.upTo, tail);
  if (rows.length > 0) rd.last = rows[rows.length - 1][0];
  rd.tail = tail;
  return rows.length;
}
async function reader(rd) {
  const c = await connect(STANDBY);
  while (!stop) if (await poll(c, rd) < PAGE) await sleep(2);
  await c.end().catch(() => {});
}

async function takeSnapshot(c) {
  const r = await c.query('SELECT s AS ev FROM state.snapshot($1) s', [STREAM]);
  const evs = r.rows.map((x) => x.ev);
  const start = evs[0];
  const end = evs[evs.length - 1];
  return {
    start: start && start.headers.control === 'snapshot-start' ? Number(start.headers.offset) : null,
    end: end && end.headers.control === 'snapshot-end' ? Number(end.headers.offset) : null,
    rows: new Map(evs.slice(1, -1).map((e) => [e.key, canon(e.value)])),
  };
}
async function snapshotter(sn) {
  const c = await connect(STANDBY);
  while (!stop) {
    await sleep(200 + Math.floor(Math.random() * 200));
    try {
      sn.snaps.push(await takeSnapshot(c));
    } catch (e) {
      // a hot standby cancels queries that conflict with replay (40001,
      // "conflict with recovery"); a client retries them, and so do we
      if (/conflict with recovery/.test(e.message)) sn.cancelled = (sn.cancelled || 0) + 1;
      else sn.errors.push(`${e.code} ${e.message}`);
    }
  }
  await c.end().catch(() => {});
}

async function main() {
  const primary = await connect({ database: DB });
  const standby = await connect(STANDBY);
  try {
    await primary.query("SELECT state.create_collection('cthings', $1, stream => $2, mode => 'lenient')", [TYPE, STREAM]);
    const mode = (await primary.query('SELECT state._write_mode() AS m')).rows[0].m;
    check(mode === 'concurrent', 'writers of one stream run side by side on the primary', `write mode ${mode}`);
    // the standby has the collection before the reader starts
    const lsn0 = (await primary.query('SELECT pg_current_wal_lsn() AS l')).rows[0].l;
    for (let i = 0; i < 300; i++) {
      if ((await standby.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn0])).rows[0].ok) break;
      await sleep(100);
    }

    const outs = [];
    const rd = { last: '-1', events: [], polls: 0, tail: 0, upTo: 0, order: null, belowTail: null };
    const sn = { snaps: [], errors: [] };
    const bg = [reader(rd).catch((e) => { rd.crash = e; }), snapshotter(sn).catch((e) => { sn.crash = e; })];
    for (let w = 0; w < WRITERS; w++) {
      const out = { committed: [], rolledBack: [], errors: [], retryable: 0 };
      outs.push(out);
      bg.push(writer(w, out).catch((e) => { out.crash = e; }));
    }
    await sleep(SECONDS * 1000);
    stop = true;
    await Promise.all(bg);

    // the standby replays everything; the reader reads on to its tail
    const lsn = (await primary.query('SELECT pg_current_wal_lsn() AS l')).rows[0].l;
    let replayed = false;
    for (let i = 0; i < 300 && !replayed; i++) {
      // a hot standby may cancel any query on a conflict with recovery (40001): ask again
      replayed = await standby.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn])
        .then((r) => r.rows[0].ok, (e) => { if (e.code !== '40001') throw e; return false; });
      if (!replayed) await sleep(100);
    }
    check(replayed, `the standby replayed the primary's WAL up to ${lsn}`);
    const c = await connect(STANDBY);
    while (await poll(c, rd) === PAGE);
    await c.end();

    const crashed = [...outs.map((o) => o.crash), rd.crash, sn.crash].filter(Boolean).map((e) => e.stack);
    check(crashed.length === 0, 'the writers, the reader and the snapshotter ran to the end', crashed.join('\n'));
    const committed = outs.flatMap((o) => o.committed);
    const rolledBack = new Set(outs.flatMap((o) => o.rolledBack));
    const errors = outs.flatMap((o) => o.errors);
    note(`${committed.length} batches committed, ${rolledBack.size} rolled back ` +
      `(${outs.reduce((a, o) => a + o.retryable, 0)} on 40P01/40001); the standby reader polled ${rd.polls} times, ` +
      `${sn.snaps.length} snapshots on the standby`);
    check(errors.length === 0, 'the writers met no other error', errors.slice(0, 5).join('\n'));
    const sorted = [...committed].sort((a, b) => a.first - b.first);
    let maxAck = 0;
    let overtaken = 0;
    for (const b of sorted) {
      if (b.ack < maxAck) overtaken++;
      maxAck = Math.max(maxAck, b.ack);
    }
    check(overtaken > 0, `commits came out of offset order (${overtaken} batches acknowledged before one with a lower offset)`);

    // --- the primary's log ----------------------------------------------------
    const log = (await primary.query('SELECT seq::bigint AS seq, event FROM state.log_events WHERE stream = $1 ORDER BY seq',
      [STREAM])).rows.map((x) => ({ seq: Number(x.seq), event: x.event }));
    const bySeq = new Map(log.map((x) => [x.seq, x.event]));
    let wrong = bySeq.size === log.length ? null : 'an offset twice in the log';
    let nCommitted = 0;
    for (const b of committed) {
      b.events.forEach((ev, i) => {
        nCommitted++;
        const got = bySeq.get(b.first + i);
        if (!got || canon(got) !== canon(ev)) wrong = wrong || `offset ${b.first + i}: logged ${JSON.stringify(got)}, committed ${JSON.stringify(ev)}`;
      });
    }
    const leaked = log.filter((x) => rolledBack.has(x.event.headers && x.event.headers.txid));
    check(wrong === null && nCommitted === log.length && leaked.length === 0,
      `the primary's log is exactly the committed batches (${nCommitted} events), at the offsets apply returned, nothing rolled back`,
      wrong || `${log.length} logged, ${nCommitted} committed, ${leaked.length} rolled back logged`);

    // --- the reader on the standby ----------------------------------------------
    check(rd.order === null, 'the standby reader read strictly increasing offsets: it never found a committed event ' +
      'at or below what it had already read', rd.order);
    check(rd.belowTail === null, "after a page shorter than max_events, nothing came at or below the standby's " +
      'state.tail of the same statement', rd.belowTail);
    let miss = null;
    for (let i = 0; i < Math.max(log.length, rd.events.length) && !miss; i++) {
      const a = log[i];
      const b = rd.events[i];
      if (!a) miss = `it read ${b.offset} beyond the log`;
      else if (!b) miss = `it did not read ${a.seq} (or anything after)`;
      else if (a.seq !== b.offset) miss = a.seq < b.offset ? `it never read committed offset ${a.seq}` : `it read ${b.offset}, not in the log`;
      else if (canon(a.event) !== canon(b.event)) miss = `offset ${a.seq}: read ${JSON.stringify(b.event)}, logged ${JSON.stringify(a.event)}`;
    }
    check(miss === null, `the standby reader read every committed event exactly once, in offset order (${rd.events.length} of ${log.length})`, miss);
    const fold = new Map();
    for (const e of rd.events) foldStep(fold, e.event);
    const tableOf = async (cl) => new Map((await cl.query('SELECT key, value FROM state.get_type($1, $2)', [TYPE, STREAM]))
      .rows.map((x) => [x.key, canon(x.value)]));
    const sd = mapDiff(await tableOf(standby), fold);
    check(sd.length === 0 && fold.size > 0, `the fold of what it read is the standby's table (${fold.size} rows)`, sd.slice(0, 5).join('\n'));
    const pd = mapDiff(await tableOf(primary), fold);
    check(pd.length === 0, "and the primary's", pd.slice(0, 5).join('\n'));
    const stail = Number((await standby.query('SELECT state.tail($1)::bigint AS t', [STREAM])).rows[0].t);
    const ptail = Number((await primary.query('SELECT state.tail($1)::bigint AS t', [STREAM])).rows[0].t);
    const lastRead = rd.events.length ? rd.events[rd.events.length - 1].offset : 0;
    check(stail === lastRead && ptail === lastRead, `state.tail on the standby (${stail}) is the last offset read and the primary's tail`,
      `standby ${stail}, primary ${ptail}, last read ${lastRead}`);

    // --- snapshots on the standby --------------------------------------------------
    if (sn.cancelled) console.log(`# ${sn.cancelled} snapshot(s) on the standby cancelled by a conflict with recovery, retried`);
    const last = await takeSnapshot(standby);
    const all = [...sn.snaps, last];
    let inexact = sn.errors.length ? `failed: ${sn.errors[0]}` : null;
    for (const s of all) {
      if (s.start === null || s.start !== s.end || s.end > stail) {
        inexact = inexact || `snapshot-start ${s.start}, -end ${s.end}, tail ${stail}`;
        continue;
      }
      const f = new Map();
      for (const x of log) if (x.seq <= s.end) foldStep(f, x.event);
      const d = mapDiff(s.rows, f);
      if (d.length) inexact = inexact || `snapshot at ${s.end}: ${d.length} rows differ from the fold of the log up to it, e.g. ${d.slice(0, 3).join('; ')}`;
    }
    check(inexact === null && sn.snaps.length > 0, `every snapshot on the standby (${all.length}) is exact: its inserts are the fold of the log up to its snapshot-end`, inexact);
    check(last.end === stail, `a last snapshot on the standby ends at its tail (${stail})`, `snapshot-end ${last.end}`);
  } finally {
    await primary.end().catch(() => {});
    await standby.end().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  check(false, `the concurrent writers' part finished within ${SECONDS + 120} s`);
  console.log(summary());
  process.exit(1);
}, (SECONDS + 120) * 1000);
main().catch((e) => check(false, 'the concurrent writers\' part ran', e.stack)).finally(() => {
  clearTimeout(watchdog);
  console.log(summary());
  process.exit(counts.failed > 0 || counts.passed === 0 ? 1 : 0);
});
