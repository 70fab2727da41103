// bench/kv.sh's client: put/get round trips per second through the Node
// client (durable-state) and SET/GET through node-redis, CLIENTS concurrent
// callers in one process, the same payloads, the same run.
//
//   node bench/kv_bench.mjs shipped=REDIS_URL always=REDIS_URL
// PG* variables point to the database with the extension (collections of
// type 'kv' on stream 'kvb' and on 'kvb_0'..'kvb_<CLIENTS-1>', made by
// kv.sh).  Every variant runs BENCH_KV_REPS times, interleaved (see the
// blocks below), so that the variants a ratio compares ran seconds apart.  Prints the report on stdout, progress on
// stderr.
import { createRequire } from 'node:module';

const require = createRequire(new URL('../clients/node/package.json', import.meta.url));
const { DurableState } = require('./index.js');
const { createClient } = require('redis');

const CLIENTS = Number(process.env.BENCH_KV_CLIENTS || 8);
const SECONDS = Number(process.env.BENCH_KV_SECONDS || 5);
const KEYS = Number(process.env.BENCH_KV_KEYS || 10000);
const REPS = Number(process.env.BENCH_KV_REPS || 3);
const NOTIFY = (process.env.BENCH_KV_NOTIFY ?? 'worker commit').split(/\s+/).filter(Boolean);
const DO_GET = (process.env.BENCH_KV_GET ?? '1') !== '0';
const DO_ASYNC = (process.env.BENCH_KV_ASYNC ?? '1') !== '0';
for (const [k, v] of Object.entries({ CLIENTS, SECONDS, KEYS, REPS })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`BENCH_KV_${k} must be a positive integer`);
}
for (const m of NOTIFY) {
  if (!['off', 'commit', 'worker'].includes(m)) throw new Error(`BENCH_KV_NOTIFY: unknown mode '${m}' (off, commit, worker)`);
}
if (NOTIFY.length === 0) throw new Error('BENCH_KV_NOTIFY names no mode');
const redisUrls = Object.fromEntries(process.argv.slice(2).map((a) => {
  const i = a.indexOf('=');
  return [a.slice(0, i), a.slice(i + 1)];
}));
if (!redisUrls.shipped || !redisUrls.always) throw new Error('usage: kv_bench.mjs shipped=REDIS_URL always=REDIS_URL');

const say = (s) => process.stderr.write(`bench/kv: ${s}\n`);
const payload = (i) => ({ user: `user-${i}`, cart: [{ sku: 'A-1', qty: 2 }, { sku: 'B-7', qty: 1 }], total: 42.5, ts: 1764000000000 + i });
const SHARED = 'kvb';
const perClient = (i) => `kvb_${i}`;

async function timed(lanes, op) {
  let n = 0;
  const end = Date.now() + SECONDS * 1000;
  const lat = [];
  await Promise.all(lanes.map(async (lane) => {
    while (Date.now() < end) {
      const k = Math.floor(Math.random() * KEYS);
      const t0 = process.hrtime.bigint();
      await op(lane, k);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      n++;
    }
  }));
  lat.sort((a, b) => a - b);
  return { ops: n / SECONDS, p50: lat[Math.floor(lat.length / 2)], p99: lat[Math.floor(lat.length * 0.99)] };
}

// --- the clients -----------------------------------------------------------
// One pool of CLIENTS connections per notify mode (and one with asynchronous
// commit); a lane is one caller: it waits for its call before the next.
const pools = {};
for (const m of NOTIFY) pools[m] = new DurableState({ max: CLIENTS, pg: { options: `-c durable_state.notify=${m}` } });
if (DO_ASYNC) {
  pools.async = new DurableState({ max: CLIENTS, pg: { options: `-c durable_state.notify=${NOTIFY[0]} -c synchronous_commit=off` } });
}
const redis = {};
for (const [name, url] of Object.entries(redisUrls)) {
  redis[name] = await Promise.all(Array.from({ length: CLIENTS }, async () => {
    const c = createClient({ url });
    await c.connect();
    return c;
  }));
}

// --- preload (untimed): every key of every stream and Redis instance ------
say(`preloading ${KEYS} keys into ${CLIENTS + 1} streams and 2 Redis instances (untimed)`);
{
  const ds = pools[NOTIFY[0]];
  for (const stream of [SHARED, ...Array.from({ length: CLIENTS }, (_, i) => perClient(i))]) {
    for (let i = 0; i < KEYS; i += 1000) {
      const batch = [];
      for (let k = i; k < Math.min(KEYS, i + 1000); k++) batch.push({ type: 'kv', key: `k${k}`, value: payload(k), headers: { operation: 'upsert' } });
      await ds.apply(batch, { stream });
    }
  }
  for (const cs of Object.values(redis)) {
    for (let k = 0; k < KEYS; k += 500) {
      await Promise.all(Array.from({ length: Math.min(500, KEYS - k) }, (_, j) => cs[0].set(`k${k + j}`, JSON.stringify(payload(k + j)))));
    }
  }
}

// --- the variants ----------------------------------------------------------
const sharedLanes = Array.from({ length: CLIENTS }, () => ({ stream: SHARED }));
const perClientLanes = Array.from({ length: CLIENTS }, (_, i) => ({ stream: perClient(i) }));
// Variants come in blocks of those a ratio compares (put one stream and a
// stream per client of one notify mode; the two Redis SETs; the gets).
// Repetition r runs the blocks rotated by r - 1 and each block rotated by
// r - 1, so the members of a block always run back to back, in alternating
// order.
const blocks = [];
const put = (ds) => (l, k) => ds.put('kv', `k${k}`, payload(k), { stream: l.stream });
for (const m of NOTIFY) {
  blocks.push([
    { id: `put one ${m}`, label: `durable_state put, one stream, notify=${m}`, lanes: sharedLanes, op: put(pools[m]) },
    { id: `put per ${m}`, label: `durable_state put, a stream per client, notify=${m}`, lanes: perClientLanes, op: put(pools[m]) },
  ]);
}
blocks.push([
  { id: 'SET always', label: 'Redis SET, appendfsync always', lanes: redis.always, op: (c, k) => c.set(`k${k}`, JSON.stringify(payload(k))) },
  { id: 'SET shipped', label: 'Redis SET, as shipped', lanes: redis.shipped, op: (c, k) => c.set(`k${k}`, JSON.stringify(payload(k))) },
]);
if (DO_ASYNC) {
  blocks.push([{ id: 'put one async', label: `durable_state put, one stream, notify=${NOTIFY[0]}, synchronous_commit=off`, lanes: sharedLanes, op: put(pools.async) }]);
}
if (DO_GET) {
  const ds = pools[NOTIFY[0]];
  blocks.push([
    { id: 'get', label: 'durable_state get (one stream)', lanes: sharedLanes, op: (l, k) => ds.get('kv', `k${k}`, { stream: l.stream }) },
    { id: 'GET shipped', label: 'Redis GET, as shipped', lanes: redis.shipped, op: async (c, k) => JSON.parse(await c.get(`k${k}`)) },
    { id: 'GET always', label: 'Redis GET, appendfsync always', lanes: redis.always, op: async (c, k) => JSON.parse(await c.get(`k${k}`)) },
  ]);
}
const variants = blocks.flat();
const rotate = (xs, n) => xs.map((_, i) => xs[(i + n) % xs.length]);

const runs = {};   // id -> [{ rep, ops, p50, p99 }]
const total = REPS * variants.length;
let runNo = 0;
for (let rep = 1; rep <= REPS; rep++) {
  for (const v of rotate(blocks, rep - 1).flatMap((b) => rotate(b, rep - 1))) {
    const r = await timed(v.lanes, v.op);
    (runs[v.id] ??= []).push({ rep, ...r });
    runNo++;
    say(`run ${String(runNo).padStart(2)}/${total} ${v.label.padEnd(66)} ${r.ops.toFixed(0).padStart(7)} ops/s`);
  }
}
for (const ds of Object.values(pools)) await ds.close();
for (const cs of Object.values(redis)) await Promise.all(cs.map((c) => c.quit()));

// --- report ----------------------------------------------------------------
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const med = Object.fromEntries(Object.entries(runs).map(([id, rs]) => [id, median(rs.map((r) => r.ops))]));
const out = [];
out.push(`  ${REPS} runs of ${SECONDS} s per variant, interleaved (the variants a ratio compares run back to back,`);
out.push('  their order alternating from one repetition to the next);');
out.push('  ops/s is the median; p50/p99 are those of the run closest to the median.');
out.push(`  ${'variant'.padEnd(70)}${'ops/s'.padStart(9)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}   every run (ops/s)`);
for (const v of variants) {
  const rs = runs[v.id];
  const m = med[v.id];
  const closest = rs.reduce((a, b) => (Math.abs(b.ops - m) < Math.abs(a.ops - m) ? b : a));
  out.push(`  ${v.label.padEnd(70)}${m.toFixed(0).padStart(9)}${closest.p50.toFixed(3).padStart(9)}${closest.p99.toFixed(3).padStart(9)}   ${rs.map((r) => r.ops.toFixed(0)).join(' ')}`);
}
// ratio NAME A B [TARGET]: median A / median B, and A/B within each repetition
const ratio = (name, a, b, target) => {
  if (!(a in med) || !(b in med) || !(med[b] > 0)) return;
  const r = med[a] / med[b];
  const pairs = runs[a].map((ra) => {
    const rb = runs[b].find((x) => x.rep === ra.rep);
    return rb && rb.ops > 0 ? ra.ops / rb.ops : null;
  }).filter((x) => x !== null);
  const per = pairs.map((x) => x.toFixed(3)).join(' ') + (pairs.length > 1 ? `, median ${median(pairs).toFixed(3)}` : '');
  const t = target ? `; target >= ${target.toFixed(2)} ${r >= target ? 'met' : 'NOT met'}` : '';
  out.push(`  ratio ${name}: ${r.toFixed(3)}x  (${med[a].toFixed(0)} / ${med[b].toFixed(0)} ops/s; per repetition: ${per}${t})`);
};
out.push('');
out.push(`  Ratios of the medians (issue 13: put on one stream >= 0.90x put with a stream per client and >= 0.50x`);
out.push('  Redis SET with appendfsync always; put/SET against Redis as shipped reported too):');
out.push('  Targets are marked for notify off and worker: with notify=commit every committing writer holds');
out.push('  PostgreSQL\'s global NOTIFY lock through its commit, whatever the streams.');
for (const m of NOTIFY) {
  const t = m !== 'commit';
  ratio(`put one-stream/${CLIENTS}-streams notify=${m}`, `put one ${m}`, `put per ${m}`, t && 0.9);
  ratio(`put one-stream/Redis-SET-appendfsync-always notify=${m}`, `put one ${m}`, 'SET always', t && 0.5);
  ratio(`put one-stream/Redis-SET-as-shipped notify=${m}`, `put one ${m}`, 'SET shipped');
  ratio(`put ${CLIENTS}-streams/Redis-SET-appendfsync-always notify=${m}`, `put per ${m}`, 'SET always');
  ratio(`put ${CLIENTS}-streams/Redis-SET-as-shipped notify=${m}`, `put per ${m}`, 'SET shipped');
}
ratio(`put one-stream synchronous_commit=off/Redis-SET-as-shipped notify=${NOTIFY[0]}`, 'put one async', 'SET shipped');
ratio('get/Redis-GET-as-shipped', 'get', 'GET shipped');
console.log(out.join('\n'));
