// The Durable Streams sink (sink.js) against the reference server
// (@durable-streams/server, in memory): a large response applied in parts,
// each its own transaction, resumed exactly after a part ("P#k"); a
// snapshot response applied in one transaction; a 410 Gone resynced with a
// reset and the stream from the start; lag in stats().  test/t/sink.js is
// the crash test (200,000 events, SIGKILL).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { MaterializedState } from '@durable-streams/state';
import { DurableStreamTestServer } from '@durable-streams/server';
import { DurableStream } from '@durable-streams/client';
import { DurableState, pg, rng, setupStream } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { sink, splitOffset } = require('../sink.js');

function events(rand, n, from = 0) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = rand();
    const op = r < 0.3 ? 'insert' : r < 0.6 ? 'update' : r < 0.85 ? 'upsert' : 'delete';
    const ev = { type: 'doc', key: `k${Math.floor(rand() * 40)}`, headers: { operation: op, txid: `tx${from + i}` } };
    if (op !== 'delete') ev.value = { i: from + i, s: 'x'.repeat(Math.floor(rand() * 30)) };
    out.push(ev);
  }
  return out;
}

async function post(url, evs) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(evs) });
  assert.ok(r.ok, `append: ${r.status}`);
  return r.headers.get('stream-next-offset');
}

async function fixture(t, name) {
  const server = new DurableStreamTestServer({ port: 0, host: '127.0.0.1', longPollTimeout: 2000 });
  await server.start();
  const url = `${server.url}/v1/stream/${name}`;
  await DurableStream.create({ url, contentType: 'application/json', warnOnHttp: false });
  const st = await setupStream(`t_sink_${name}`, [['doc', "mode => 'lenient'"]]);
  const ds = new DurableState({ stream: st.stream });
  const c = new pg.Client();
  await c.connect();
  t.after(async () => {
    await c.end();
    await ds.close();
    await st.drop();
    await server.stop();
  });
  const q = async (sql) => (await c.query(sql, [st.stream])).rows;
  const log = () => q(`SELECT l.event, l.xid FROM (SELECT e.event, x.xmin::text AS xid, e."offset"
                         FROM state.changes($1, '-1', 100000) e
                         JOIN state.log x ON x.stream_id = (SELECT id FROM state._streams WHERE name = $1)
                          AND (e."offset")::bigint BETWEEN x.first_seq AND x.last_seq) l ORDER BY l."offset"`);
  const sourceOffset = async () => (await q('SELECT source_offset FROM state.streams WHERE stream = $1'))[0].source_offset;
  return { url, stream: st.stream, ds, log, sourceOffset };
}

async function assertFold(ds, remote) {
  const folded = new MaterializedState();
  folded.applyBatch(remote);
  assert.deepStrictEqual(Object.fromEntries(await ds.getType('doc')), Object.fromEntries(folded.getType('doc')));
}

test('a large response goes in parts, each committed alone; a restart after part k skips exactly k events', async (t) => {
  const f = await fixture(t, 'parts');
  const rand = rng(1701);
  const all = events(rand, 100);
  const tail = await post(f.url, all);
  // as if a run had committed the first 30 events of the response from -1 and died
  const r0 = await f.ds.apply(all.slice(0, 30), { sourceOffset: '-1#000000000030' });
  assert.equal(r0.applied, 30);
  assert.deepStrictEqual(splitOffset('-1#000000000030'), { from: '-1', skip: 30 });
  const offsets = [];
  const s = sink({ url: f.url, ds: f.ds, stream: f.stream, live: false, maxBatchEvents: 16, maxBatchBytes: 100000 });
  const seen = [];
  s.on('batch', (b) => seen.push(b));
  const poll = setInterval(() => f.sourceOffset().then((o) => offsets.push(o), () => {}), 1);
  await s.done;
  clearInterval(poll);
  const st = s.stats();
  assert.equal(st.events, 70);
  assert.equal(st.offset, tail);
  assert.equal(await f.sourceOffset(), tail);
  const log = await f.log();
  assert.equal(log.length, 100, 'each event once');
  assert.deepStrictEqual(log.map((r) => r.event.headers.txid), all.map((e) => e.headers.txid));
  // 30 directly, then 70 in parts of 16: 5 transactions
  assert.equal(new Set(log.slice(30).map((r) => r.xid)).size, 5);
  assert.ok(offsets.every((o) => o === '-1#000000000030' || /^-1#0000000000(46|62|78|94)$/.test(o) || o === tail),
    `intermediate source offsets: ${[...new Set(offsets)].join(' ')}`);
  await assertFold(f.ds, all);
  assert.equal(st.behind, 0);
  assert.equal(st.eventsBehind, 0);
});

test('a snapshot response goes in one transaction; a 410 Gone resyncs: reset and the stream from the start', async (t) => {
  const f = await fixture(t, 'resync');
  const rand = rng(1702);
  const snap = [{ headers: { control: 'snapshot-start' } }, ...events(rand, 60).filter((e) => e.value)
    .map((e) => ({ ...e, headers: { operation: 'upsert', txid: e.headers.txid } })), { headers: { control: 'snapshot-end' } }];
  await post(f.url, snap);
  let s = sink({ url: f.url, ds: f.ds, stream: f.stream, live: false, maxBatchEvents: 10, maxBatchBytes: 500 });
  await s.done;
  let log = await f.log();
  assert.equal(log.length, snap.length);
  assert.equal(new Set(log.map((r) => r.xid)).size, 1, 'the snapshot in one transaction');
  await assertFold(f.ds, snap);

  // more history, then the server "forgets" every offset but -1
  const more = events(rand, 50, 1000);
  const tail = await post(f.url, more);
  let gone = 0;
  const fetch410 = (input, init) => {
    const u = new URL(typeof input === 'string' ? input : input.url);
    if ((init?.method ?? 'GET') === 'GET' && u.searchParams.get('offset') !== '-1') {
      gone++;
      return Promise.resolve(new Response('gone', { status: 410 }));
    }
    return fetch(input, init);
  };
  s = sink({ url: f.url, ds: f.ds, stream: f.stream, live: false, fetch: fetch410, maxBatchEvents: 10, maxBatchBytes: 500 });
  const resyncs = [];
  s.on('resync', (e) => resyncs.push(e.status));
  await s.done;
  assert.ok(gone >= 1);
  assert.deepStrictEqual(resyncs, [410]);
  assert.equal(s.stats().resyncs, 1);
  assert.equal(await f.sourceOffset(), tail);
  log = await f.log();
  const after = log.slice(snap.length);
  assert.equal(after.length, 1 + snap.length + more.length, 'reset, then the whole stream');
  assert.equal(after[0].event.headers.control, 'reset');
  assert.equal(new Set(after.map((r) => r.xid)).size, 1, 'the resync in one transaction');
  await assertFold(f.ds, [...snap, ...more]);
});

test('stats() reports how far behind the remote tail the sink is', async (t) => {
  const f = await fixture(t, 'lag');
  const rand = rng(1703);
  await post(f.url, events(rand, 20));
  const lags = [];
  let hold;
  const held = new Promise((r) => { hold = r; });
  const s = sink({ url: f.url, ds: f.ds, stream: f.stream, live: 'long-poll', lagIntervalMs: 50,
    onLag: (st) => lags.push(st), onBatch: async (b) => { if (b.offset && lags.length < 1000) await held; } });
  // while the first batch is held, 30 more events arrive
  await new Promise((r) => setTimeout(r, 100));
  const tail = await post(f.url, events(rand, 30, 20));
  await new Promise((r) => setTimeout(r, 300));
  hold();
  const end = Date.now() + 10000;
  while ((await f.sourceOffset()) !== tail && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 150));
  await s.close();
  const behind = lags.filter((l) => l.eventsBehind > 0);
  assert.ok(behind.length > 0, 'lag was reported');
  assert.equal(behind[behind.length - 1].behindUnit, 'bytes');
  assert.ok(Math.abs(behind[behind.length - 1].eventsBehind - 30) <= 10, `about 30 events behind: ${behind[behind.length - 1].eventsBehind}`);
  const last = s.stats();
  assert.equal(last.events, 50);
  assert.equal(last.behind, 0);
  assert.equal(last.offset, tail);
});

test('a batch committed under the sink (a killed run\'s last statement, finished by its backend) is not applied again', async (t) => {
  const f = await fixture(t, 'late');
  const rand = rng(1704);
  const e1 = events(rand, 10);
  const a = await post(f.url, e1);
  let gate;
  const held = new Promise((r) => { gate = r; });
  const gated = async (input, init) => {
    const u = new URL(typeof input === 'string' ? input : input.url);
    if ((init?.method ?? 'GET') === 'GET' && u.searchParams.get('offset') === a) await held;
    return fetch(input, init);
  };
  const s = sink({ url: f.url, ds: f.ds, stream: f.stream, live: 'long-poll', fetch: gated });
  const restarts = [];
  s.on('restart', (e) => restarts.push(e.message));
  while ((await f.sourceOffset()) !== a) await new Promise((r) => setTimeout(r, 10));
  // the sink waits for more after a; meanwhile e2 arrives and "another run" commits it at b
  const e2 = events(rand, 10, 100);
  const b = await post(f.url, e2);
  await f.ds.apply(e2, { sourceOffset: b });
  const e3 = events(rand, 10, 200);
  const c = await post(f.url, e3);
  gate();
  // the sink's read from a returns e2 and e3 (offset c > b): it must not apply e2 again
  const end = Date.now() + 10000;
  while ((await f.sourceOffset()) !== c && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  const t0 = Date.now();
  await s.close();
  assert.ok(Date.now() - t0 < 1500, `close() ends the long-poll in flight (${Date.now() - t0} ms)`);
  assert.equal(await f.sourceOffset(), c);
  const log = await f.log();
  assert.deepStrictEqual(log.map((r) => r.event.headers.txid), [...e1, ...e2, ...e3].map((e) => e.headers.txid));
  assert.equal(restarts.length, 1, 'it noticed the offset moved, and started again from it');
  assert.equal(s.stats().restarts, 1);
  await assertFold(f.ds, [...e1, ...e2, ...e3]);
});

test('a response is cut at its members without parsing (arrayMembers)', () => {
  const { arrayMembers } = require('../sink.js');
  const rand = rng(1705);
  const strs = ['', 'a', '"', '\\', '\\"', 'x\\\\', '],[', '{"a":1}', 'ünï ✓', '\n\t', '\u2028'];
  const value = (d = 0) => {
    const r = rand();
    if (d > 3 || r < 0.2) return strs[Math.floor(rand() * strs.length)];
    if (r < 0.3) return Math.floor(rand() * 1e6) / 7;
    if (r < 0.35) return [true, false, null][Math.floor(rand() * 3)];
    if (r < 0.6) return Array.from({ length: Math.floor(rand() * 4) }, () => value(d + 1));
    const o = {};
    for (let i = Math.floor(rand() * 4); i > 0; i--) o[strs[Math.floor(rand() * strs.length)] + i] = value(d + 1);
    return o;
  };
  for (let round = 0; round < 500; round++) {
    const arr = Array.from({ length: Math.floor(rand() * 8) }, () => value());
    const text = rand() < 0.5 ? JSON.stringify(arr) : ` \n${JSON.stringify(arr, null, rand() < 0.5 ? 2 : '\t')} \n`;
    const got = arrayMembers(text).map(([a, b]) => JSON.parse(text.slice(a, b)));
    assert.deepStrictEqual(got, arr, text);
  }
  assert.throws(() => arrayMembers('{"a":1}'), /not a JSON array/);
  assert.throws(() => arrayMembers('[1, "x'), /unterminated/);
});

test('live false on a paged server: every page until one is up to date', { timeout: 30000 }, async (t) => {
  // a server of three pages, as this repository's gateway pages state.changes()
  const st = await setupStream('t_sink_paged', [['doc', "mode => 'lenient'"]]);
  const ds = new DurableState({ stream: st.stream });
  t.after(async () => {
    await ds.close();
    await st.drop();
  });
  const rand = rng(1706);
  const evs = events(rand, 30);
  const pages = { '-1': ['00000000000000000010', evs.slice(0, 10), false],
    '00000000000000000010': ['00000000000000000020', evs.slice(10, 20), false],
    '00000000000000000020': ['00000000000000000030', evs.slice(20), true] };
  const asked = [];
  const paged = async (input) => {
    const off = new URL(typeof input === 'string' ? input : input.url).searchParams.get('offset');
    asked.push(off);
    const [next, body, upToDate] = pages[off];
    return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json',
      'stream-next-offset': next, ...(upToDate ? { 'stream-up-to-date': 'true' } : {}) } });
  };
  const s = sink({ url: 'http://paged.invalid/v1/state/x', ds, stream: st.stream, live: false, fetch: paged });
  await s.done;
  assert.deepStrictEqual(asked, ['-1', '00000000000000000010', '00000000000000000020']);
  assert.equal(s.stats().events, 30);
  assert.equal(s.stats().behindUnit, 'events');
  assert.equal(s.stats().eventsBehind, 0);
  await assertFold(ds, evs);
});
