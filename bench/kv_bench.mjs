// bench/kv.sh's client: put/get round trips per second through the Node
// client (durable-state) and SET/GET through node-redis, 8 concurrent
// clients (connections) in one process, the same payloads, the same run.
//
//   node bench/kv_bench.mjs REDIS_URL [label=redis-url ...]
// PG* variables point to the database with the extension; prints a table.
import { createRequire } from 'node:module';

const require = createRequire(new URL('../clients/node/package.json', import.meta.url));
const { DurableState } = require('./index.js');
const { createClient } = require('redis');

const CLIENTS = Number(process.env.BENCH_KV_CLIENTS || 8);
const SECONDS = Number(process.env.BENCH_KV_SECONDS || 5);
const KEYS = Number(process.env.BENCH_KV_KEYS || 10000);
const redisTargets = process.argv.slice(2).map((a) => {
  const i = a.indexOf('=');
  return { label: a.slice(0, i), url: a.slice(i + 1) };
});

const payload = (i) => ({ user: `user-${i}`, cart: [{ sku: 'A-1', qty: 2 }, { sku: 'B-7', qty: 1 }], total: 42.5, ts: 1764000000000 + i });

async function timed(label, lanes, op) {
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
  return { label, ops: n / SECONDS, p50: lat[Math.floor(lat.length / 2)], p99: lat[Math.floor(lat.length * 0.99)] };
}

const rows = [];
// durable_state: one pool of CLIENTS connections, one stream per variant
for (const [variant, opts] of [
  ['durable_state, one stream', {}],
  ['durable_state, a stream per client', { perClient: true }],
  ['durable_state, one stream, synchronous_commit=off', { async: true }],
]) {
  const ds = new DurableState({ max: CLIENTS, pg: opts.async ? { options: '-c synchronous_commit=off' } : {} });
  const lanes = Array.from({ length: CLIENTS }, (_, i) => ({ stream: opts.perClient ? `kvb_${i}` : 'kvb_0' }));
  // preload every key of the streams used, untimed
  for (const stream of new Set(lanes.map((l) => l.stream))) {
    for (let i = 0; i < KEYS; i += 1000) {
      const batch = [];
      for (let k = i; k < Math.min(KEYS, i + 1000); k++) batch.push({ type: 'kv', key: `k${k}`, value: payload(k), headers: { operation: 'upsert' } });
      await ds.apply(batch, { stream });
    }
  }
  rows.push(await timed(`${variant}: put`, lanes, (l, k) => ds.put('kv', `k${k}`, payload(k), { stream: l.stream })));
  rows.push(await timed(`${variant}: get`, lanes, (l, k) => ds.get('kv', `k${k}`, { stream: l.stream })));
  await ds.close();
}
for (const { label, url } of redisTargets) {
  const clients = await Promise.all(Array.from({ length: CLIENTS }, async () => {
    const c = createClient({ url });
    await c.connect();
    return c;
  }));
  for (let k = 0; k < KEYS; k++) await clients[0].set(`k${k}`, JSON.stringify(payload(k)));
  rows.push(await timed(`${label}: SET`, clients, (c, k) => c.set(`k${k}`, JSON.stringify(payload(k)))));
  rows.push(await timed(`${label}: GET`, clients, async (c, k) => JSON.parse(await c.get(`k${k}`))));
  await Promise.all(clients.map((c) => c.quit()));
}
console.log(JSON.stringify(rows));
