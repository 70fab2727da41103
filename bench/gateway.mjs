// bench/gateway.mjs -- the HTTP gateway (clients/gateway/server.mjs, on
// Postgres) against the reference Durable Streams server
// (@durable-streams/server 0.3.7, in memory), in the same run.  Started by
// bench/gateway.sh, which provides the cluster (PG* variables).
//
// Targets, each in a child process of its own:
//   gateway   /v1/state/<stream>: a durable_state stream (state.changes,
//             state.apply), LISTEN wake-ups (the default)
//   gw-wait   the same gateway with GATEWAY_WAKEUP=wait (waiting reads, as
//             on a standby; awaitTxId only)
//   gw-table  /v1/stream/<path>: the gateway's generic stream in its tables
//             (catch-up and append only)
//   reference DurableStreamTestServer in memory (compression off: the
//             gateway does not compress either), /v1/stream/<path>
//
// Measures, REPS times interleaved (gateway, gw-table, reference, ...),
// medians reported:
//   catch-up  a 100k-event stream (BENCH_GW_EVENTS) read from offset -1 to
//             Stream-Up-To-Date following Stream-Next-Offset, JSON parsed:
//             events/s
//   append    8 producers (BENCH_GW_PRODUCERS) each POSTing BENCH_GW_APPENDS
//             single-event requests one after the other with
//             Producer-Id/Epoch/Seq: events/s over the wall time
//   awaitTxId StreamDB (@durable-streams/state + @tanstack/db, in Node)
//             following the stream with live 'long-poll' and 'sse':
//             awaitTxId(txid) after a write carrying that txid -- for the
//             gateway a SQL state.apply on a separate connection, for the
//             reference an HTTP append -- ms from the write's
//             acknowledgement (COMMIT returned / POST answered) to
//             awaitTxId resolving, BENCH_GW_ROUNDS rounds: p50, p99
'use strict';

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, '..');
const GW_DIR = path.join(ROOT, 'clients/gateway');
const require = createRequire(path.join(GW_DIR, 'package.json'));
const pg = require('pg');
const { createStreamDB, createStateSchema } = await import(require.resolve('@durable-streams/state/db'));

const EVENTS = Number(process.env.BENCH_GW_EVENTS || 100000);
const PRODUCERS = Number(process.env.BENCH_GW_PRODUCERS || 8);
const APPENDS = Number(process.env.BENCH_GW_APPENDS || 250);
const ROUNDS = Number(process.env.BENCH_GW_ROUNDS || 100);
const REPS = Number(process.env.BENCH_GW_REPS || 3);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length - 1) * p))];
const ev = (key, extra = {}) => ({ type: 'item', key, value: { id: key, n: 1, s: 'some text of the event' }, headers: { operation: 'upsert', ...extra } });

function child(args, env, what) {
    return new Promise((resolve, reject) => {
        const c = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        const t = setTimeout(() => reject(new Error(`${what} did not start: ${out}`)), 20000);
        c.stdout.on('data', (d) => {
            out += d;
            const m = /(http:\/\/[^\s]+)/.exec(out);
            if (m) {
                clearTimeout(t);
                resolve({ url: m[1].replace(/\/$/, ''), stop: () => new Promise((r) => { c.on('exit', r); c.kill('SIGTERM'); }) });
            }
        });
        c.stderr.on('data', (d) => { out += d; });
        c.on('exit', (code) => reject(new Error(`${what} exited (${code}): ${out}`)));
    });
}

const REF_MAIN = `
import { createRequire } from 'node:module';
const require = createRequire(${JSON.stringify(path.join(GW_DIR, 'package.json'))});
const { DurableStreamTestServer } = await import(require.resolve('@durable-streams/server'));
const s = new DurableStreamTestServer({ port: 0, compression: false, longPollTimeout: 30000 });
const url = await s.start();
console.log(url);
process.on('SIGTERM', () => s.stop().then(() => process.exit(0)));
`;

async function post(url, body, headers = {}) {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    await r.arrayBuffer();
    if (r.status >= 300) throw new Error(`POST ${url}: ${r.status}`);
    return r;
}

async function put(url) {
    const r = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' } });
    await r.arrayBuffer();
    if (r.status !== 201 && r.status !== 200) throw new Error(`PUT ${url}: ${r.status}`);
}

// catch-up: read from -1 until up to date; events/s
async function catchUp(url) {
    const t0 = performance.now();
    let offset = '-1', n = 0;
    for (;;) {
        const r = await fetch(`${url}?offset=${offset}`);
        const body = await r.json();
        n += body.length;
        offset = r.headers.get('stream-next-offset');
        if (r.headers.get('stream-up-to-date') === 'true') break;
    }
    const s = (performance.now() - t0) / 1000;
    if (n !== EVENTS) throw new Error(`catch-up read ${n} events, not ${EVENTS}`);
    return n / s;
}

// append: PRODUCERS producers, APPENDS single-event POSTs each
async function append(url, tag) {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: PRODUCERS }, async (_, p) => {
        for (let i = 0; i < APPENDS; i++) {
            await post(url, [ev(`${tag}-${p}-${i}`)],
                { 'producer-id': `${tag}-p${p}`, 'producer-epoch': '0', 'producer-seq': String(i) });
        }
    }));
    return (PRODUCERS * APPENDS) / ((performance.now() - t0) / 1000);
}

const anySchema = { '~standard': { version: 1, vendor: 'bench', validate: (v) => ({ value: v }) } };

// awaitTxId after a write: ms from the write's acknowledgement
async function txLatency(url, live, write, tag) {
    const db = createStreamDB({
        streamOptions: { url, contentType: 'application/json' }, live,
        state: createStateSchema({ items: { schema: anySchema, type: 'item', primaryKey: 'id' } }),
    });
    await db.preload();
    await sleep(200);
    const ack = [], total = [];
    for (let i = 0; i < ROUNDS; i++) {
        const txid = `${tag}-${live}-${i}-${Math.random().toString(36).slice(2)}`;
        let done = 0;
        const p = db.utils.awaitTxId(txid, 10000).then(() => { done = performance.now(); });
        const t0 = performance.now();
        await write(txid);
        const t = performance.now();
        await p;
        // the event may come before the writer hears its COMMIT: 0
        ack.push(Math.max(0, done - t));
        total.push(done - t0);
        await sleep(5);
    }
    db.close();
    return { ack, total };
}

async function main() {
    const sql = new pg.Client();
    await sql.connect();
    await sql.query('CREATE EXTENSION IF NOT EXISTS durable_state');
    for (const s of ['bench_read', 'bench_lat']) {
        await sql.query(`SELECT state.create_collection($1, 'item', stream => $1) WHERE NOT EXISTS
                           (SELECT 1 FROM state.collections WHERE name = $1)`, [s]);
    }
    const gw = await child([path.join(GW_DIR, 'server.mjs')], { PORT: '0', LONG_POLL_TIMEOUT_MS: '30000' }, 'gateway');
    const gwWait = await child([path.join(GW_DIR, 'server.mjs')],
        { PORT: '0', LONG_POLL_TIMEOUT_MS: '30000', GATEWAY_WAKEUP: 'wait' }, 'gateway (wait)');
    const ref = await child(['--input-type=module', '-e', REF_MAIN], {}, 'reference server');
    console.log(`# gateway ${gw.url}, reference ${ref.url}`);

    // load 100k events into each, untimed
    const batch = 1000;
    await put(`${gw.url}/v1/stream/bench_read`);
    await put(`${ref.url}/v1/stream/bench_read`);
    for (let i = 0; i < EVENTS; i += batch) {
        const events = Array.from({ length: Math.min(batch, EVENTS - i) }, (_, j) => ev(`k${i + j}`));
        await sql.query(`SELECT state.apply($1::jsonb, 'bench_read')`, [JSON.stringify(events)]);
        await post(`${gw.url}/v1/stream/bench_read`, events);
        await post(`${ref.url}/v1/stream/bench_read`, events);
    }
    console.log(`# loaded ${EVENTS} events into each`);

    const targets = {
        gateway: {
            read: `${gw.url}/v1/state/bench_read`,
            appendUrl: async (rep) => {
                const s = `bench_app_${rep}`;
                await sql.query(`SELECT state.create_collection($1, 'item', stream => $1)`, [s]);
                return `${gw.url}/v1/state/${s}`;
            },
            lat: `${gw.url}/v1/state/bench_lat`,
            write: (txid) => sql.query(`SELECT state.apply($1::jsonb, 'bench_lat')`, [JSON.stringify([ev(txid, { txid })])]),
        },
        'gw-wait': {
            lat: `${gwWait.url}/v1/state/bench_lat`,
            write: (txid) => sql.query(`SELECT state.apply($1::jsonb, 'bench_lat')`, [JSON.stringify([ev(txid, { txid })])]),
        },
        'gw-table': {
            read: `${gw.url}/v1/stream/bench_read`,
            appendUrl: async (rep) => {
                await put(`${gw.url}/v1/stream/bench_app_${rep}`);
                return `${gw.url}/v1/stream/bench_app_${rep}`;
            },
        },
        reference: {
            read: `${ref.url}/v1/stream/bench_read`,
            appendUrl: async (rep) => {
                await put(`${ref.url}/v1/stream/bench_app_${rep}`);
                return `${ref.url}/v1/stream/bench_app_${rep}`;
            },
            lat: `${ref.url}/v1/stream/bench_lat`,
            write: (txid) => post(`${ref.url}/v1/stream/bench_lat`, [ev(txid, { txid })]),
        },
    };
    await put(`${ref.url}/v1/stream/bench_lat`);

    const res = {};
    const add = (t, k, v) => { ((res[t] ??= {})[k] ??= []).push(v); };
    for (let rep = 1; rep <= REPS; rep++) {
        for (const [name, t] of Object.entries(targets)) {
            if (t.read) add(name, 'catchup', await catchUp(t.read));
            if (t.appendUrl) add(name, 'append', await append(await t.appendUrl(rep), `${name}-${rep}`));
            if (t.lat) {
                for (const live of ['long-poll', 'sse']) {
                    const ms = await txLatency(t.lat, live, t.write, `${name}-${rep}`);
                    add(name, `${live} p50`, pct(ms.ack, 0.5));
                    add(name, `${live} p99`, pct(ms.ack, 0.99));
                    add(name, `${live} write p50`, pct(ms.total, 0.5));
                    add(name, `${live} write p99`, pct(ms.total, 0.99));
                }
            }
            console.log(`# rep ${rep} ${name}: ${Object.entries(res[name]).map(([k, v]) => `${k} ${v.at(-1).toFixed(k.includes(' p') ? 2 : 0)}`).join(', ')}`);
        }
    }

    console.log(`\nmedians of ${REPS} interleaved runs (${EVENTS} events; ${PRODUCERS} producers x ${APPENDS} single-event POSTs; ${ROUNDS} awaitTxId rounds)\n`);
    const table = (cols, keys) => {
        console.log(`| target | ${cols.join(' | ')} |`);
        console.log(`|---|${cols.map(() => '---:').join('|')}|`);
        for (const name of Object.keys(targets)) {
            const row = keys.map((k) => {
                const v = res[name][k];
                if (!v) return '-';
                const m = median(v);
                return k.includes(' p') ? m.toFixed(2) : Math.round(m).toLocaleString('en-US');
            });
            console.log(`| ${name} | ${row.join(' | ')} |`);
        }
        console.log('');
    };
    table(['catch-up events/s', 'append events/s'], ['catchup', 'append']);
    console.log('awaitTxId, ms from the write\'s acknowledgement (gateway: SQL COMMIT returned; reference: POST answered):\n');
    table(['long-poll p50', 'long-poll p99', 'SSE p50', 'SSE p99'], ['long-poll p50', 'long-poll p99', 'sse p50', 'sse p99']);
    console.log('awaitTxId, ms from the start of the write (its commit included):\n');
    table(['long-poll p50', 'long-poll p99', 'SSE p50', 'SSE p99'],
        ['long-poll write p50', 'long-poll write p99', 'sse write p50', 'sse write p99']);
    await gw.stop();
    await gwWait.stop();
    await ref.stop();
    await sql.end();
}

main().then(() => process.exit(0), (err) => {
    console.error(err);
    process.exit(1);
});
