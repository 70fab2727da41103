// bench/sink_bench.mjs -- the Durable Streams sink (clients/node/sink.js)
// from the reference server (@durable-streams/server, in memory, in a child
// process of its own) into Postgres, against the reference server's own
// catch-up read rate, in the same run.  Run by bench/sink.sh (which starts
// the cluster); `node bench/sink_bench.mjs server` is the server process.
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(HERE, '../clients/node/package.json'));

if (process.argv[2] === 'server') {
  const { DurableStreamTestServer } = require('@durable-streams/server');
  const server = new DurableStreamTestServer({ port: 0, host: '127.0.0.1' });
  await server.start();
  console.log(server.url);
  process.on('SIGTERM', () => server.stop().then(() => process.exit(0)));
} else {
  await main();
}

async function main() {
  const pg = require('pg');
  const { DurableStream, stream: readStream } = require('@durable-streams/client');
  const { sink } = require('./sink.js');
  const { DurableState } = require('./index.js');
  const { rng } = require('./test/helpers/prng.js');

  const EVENTS = Number(process.env.BENCH_SINK_EVENTS || 200000);
  const REPS = Number(process.env.BENCH_SINK_REPS || 3);
  const KEYS = Number(process.env.BENCH_SINK_KEYS || 20000);
  const TXID = process.env.BENCH_SINK_TXID || 'event';
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const best = (a) => Math.max(...a);
  const fmt = (n) => Math.round(n).toLocaleString('en-US');

  const srv = spawn(process.execPath, [fileURLToPath(import.meta.url), 'server'], { stdio: ['ignore', 'pipe', 'inherit'] });
  process.on('exit', () => srv.kill('SIGKILL')); // also when the bench fails
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));
  const base = await new Promise((resolve, reject) => {
    srv.stdout.once('data', (d) => resolve(String(d).trim()));
    srv.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  const admin = new pg.Client();
  await admin.connect();
  await admin.query('CREATE EXTENSION IF NOT EXISTS durable_state');

  // the events: 'user' (a generated typed table) and 'message' (documents), upserts and a few deletes
  const rand = rng(4242);
  const all = [];
  for (let i = 0; i < EVENTS; i++) {
    const type = rand() < 0.5 ? 'user' : 'message';
    const key = `${type[0]}${Math.floor(rand() * KEYS)}`;
    const del = rand() < 0.05;
    const ev = { type, key, headers: { operation: del ? 'delete' : 'upsert' } };
    if (TXID === 'event') ev.headers.txid = `b${i}`;
    if (!del) {
      ev.value = type === 'user'
        ? { id: key, name: `user ${i}`, n: i, score: Math.round(rand() * 1e5) / 100, active: rand() < 0.5 }
        : { text: `message ${i} ${'x'.repeat(Math.floor(rand() * 60))}`, at: i, tags: ['a', 'b'] };
    }
    all.push(ev);
  }
  const bytes = JSON.stringify(all).length;

  // appends as an idempotent producer: a POST on a keep-alive connection the
  // server just closed (ECONNRESET, seen on a loaded machine) is retried once
  const seqs = new Map();
  async function append(url, events) {
    const seq = seqs.get(url) ?? 0;
    seqs.set(url, seq + 1);
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await fetch(url, { method: 'POST', body: JSON.stringify(events), headers: {
          'content-type': 'application/json', 'producer-id': 'bench', 'producer-epoch': '0', 'producer-seq': String(seq) } });
        if (!r.ok) throw new Error(`append: ${r.status}`);
        return r.headers.get('stream-next-offset');
      } catch (err) {
        if (attempt >= 5) throw err;
        await new Promise((res) => setTimeout(res, 50 * attempt));
      }
    }
  }

  async function remoteStream(name, events) {
    const url = `${base}/v1/stream/${name}`;
    await DurableStream.create({ url, contentType: 'application/json', warnOnHttp: false });
    for (let i = 0; i < events.length; i += 1000) await append(url, events.slice(i, i + 1000));
    return url;
  }
  async function pgStream(name) {
    await admin.query(`SELECT state.create_collection($1, 'user', stream => $2, mode => 'lenient', schema => $3)`,
      [`${name}_user`, name, JSON.stringify({ type: 'object', properties: {
        id: { type: 'string' }, name: { type: 'string' }, n: { type: 'integer' }, score: { type: 'number' },
        active: { type: 'boolean' } } })]);
    await admin.query(`SELECT state.create_collection($1, 'message', stream => $2, mode => 'lenient')`, [`${name}_message`, name]);
  }
  async function dropPg(name) {
    for (const t of ['user', 'message']) await admin.query('SELECT state.drop_collection($1, $2, drop_table => true)', [`${name}_${t}`, name]);
    const sid = (await admin.query('SELECT id FROM state._streams WHERE name = $1', [name])).rows[0].id;
    for (const t of ['state.log', 'state._txids', 'state._expiry']) await admin.query(`DELETE FROM ${t} WHERE stream_id = $1`, [sid]);
    await admin.query('DELETE FROM state._streams WHERE id = $1', [sid]);
  }

  const res = { get: [], client: [], clientParse: [], sink: [], direct: [], live: [] };
  for (let rep = 0; rep < REPS; rep++) {
    const name = `sinkb_${process.pid}_${rep}`;
    const url = await remoteStream(name, all);
    // 1. the reference server's catch-up read: one GET from -1, the body read (and, for the client, parsed)
    let t = process.hrtime.bigint();
    const r = await fetch(`${url}?offset=-1`);
    const body = await r.text();
    res.get.push(EVENTS / (Number(process.hrtime.bigint() - t) / 1e9));
    if (body.length < bytes - 10) throw new Error('short read');
    t = process.hrtime.bigint();
    await new Promise((resolve, reject) => {
      readStream({ url, offset: '-1', live: false, json: true, warnOnHttp: false }).then((s) => {
        s.subscribeText(() => { resolve(); });
      }, reject);
    });
    res.client.push(EVENTS / (Number(process.hrtime.bigint() - t) / 1e9));
    t = process.hrtime.bigint();
    await new Promise((resolve, reject) => {
      readStream({ url, offset: '-1', live: false, json: true, warnOnHttp: false }).then((s) => {
        s.subscribeJson((b) => { if (b.items.length !== EVENTS) reject(new Error('short')); resolve(); });
      }, reject);
    });
    res.clientParse.push(EVENTS / (Number(process.hrtime.bigint() - t) / 1e9));

    // 2. the sink's catch-up into Postgres (from -1, live false)
    await pgStream(name);
    await admin.query('CHECKPOINT');
    t = process.hrtime.bigint();
    const s = sink({ url, stream: name, live: false, lagIntervalMs: 0 });
    await s.done;
    const st = s.stats();
    await s.close();
    res.sink.push(st.events / (Number(process.hrtime.bigint() - t) / 1e9));
    if (st.events !== EVENTS) throw new Error(`the sink applied ${st.events}`);

    // 3. the same events straight into Postgres: applyText of NDJSON, 10,000 per call (no HTTP)
    await dropPg(name);
    await pgStream(name);
    await admin.query('CHECKPOINT');
    const ds = new DurableState({ stream: name, max: 1 });
    const parts = [];
    for (let i = 0; i < EVENTS; i += 10000) parts.push(all.slice(i, i + 10000).map((e) => JSON.stringify(e)).join('\n'));
    t = process.hrtime.bigint();
    for (const p of parts) await ds.applyText(p);
    res.direct.push(EVENTS / (Number(process.hrtime.bigint() - t) / 1e9));
    await ds.close();
    await dropPg(name);

    // 4. live: the sink follows while the events are appended (1,000 per POST, as fast as they go)
    const lname = `${name}_live`;
    const lurl = `${base}/v1/stream/${lname}`;
    await DurableStream.create({ url: lurl, contentType: 'application/json', warnOnHttp: false });
    await pgStream(lname);
    await admin.query('CHECKPOINT');
    const ls = sink({ url: lurl, stream: lname, live: true, lagIntervalMs: 0 });
    await new Promise((r) => setTimeout(r, 300));
    t = process.hrtime.bigint();
    let tail;
    for (let i = 0; i < EVENTS; i += 1000) tail = await append(lurl, all.slice(i, i + 1000));
    const appendSecs = Number(process.hrtime.bigint() - t) / 1e9;
    while (ls.stats().offset !== tail) await new Promise((r) => setTimeout(r, 5));
    res.live.push(EVENTS / (Number(process.hrtime.bigint() - t) / 1e9));
    const lst = ls.stats();
    await ls.close();
    await dropPg(lname);
    console.log(`  rep ${rep + 1}: server GET ${fmt(res.get[rep])}/s, client catch-up ${fmt(res.client[rep])}/s `
      + `(parsed ${fmt(res.clientParse[rep])}/s), sink catch-up ${fmt(res.sink[rep])}/s, direct apply_text `
      + `${fmt(res.direct[rep])}/s, sink live ${fmt(res.live[rep])}/s (appends took ${appendSecs.toFixed(1)} s, `
      + `${lst.batches} batches)`);
  }
  srv.kill('SIGTERM');
  await admin.end();

  console.log(`\nevents/s, ${EVENTS} events (${(bytes / EVENTS).toFixed(0)} bytes each), ${REPS} reps: best (median)`);
  const row = (label, a) => console.log(`  ${label.padEnd(58)} ${fmt(best(a)).padStart(10)} (${fmt(median(a))})`);
  row('reference server catch-up read (one GET, body read)', res.get);
  row('@durable-streams/client catch-up (subscribeText)', res.client);
  row('@durable-streams/client catch-up, parsed (subscribeJson)', res.clientParse);
  row('sink catch-up into Postgres (from -1, live false)', res.sink);
  row('sink following live (appends of 1,000 until it is at the tail)', res.live);
  row('apply_text of the same NDJSON, 10,000 per call (no HTTP)', res.direct);
  console.log(`  sink catch-up / server catch-up read: ${(median(res.sink) / median(res.get)).toFixed(3)} (medians); `
    + `sink catch-up / direct apply_text: ${(median(res.sink) / median(res.direct)).toFixed(2)}`);
}
