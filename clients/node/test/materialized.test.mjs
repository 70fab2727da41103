// A randomized stream applied through Postgres and through
// @durable-streams/state's own MaterializedState must give the same state;
// so must a MaterializedState fed by the adapter (snapshot, then the
// lossless subscription, by LISTEN and by waiting reads) and one loaded
// from a snapshot at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { MaterializedState } from '@durable-streams/state';
import { DurableState, randomValue, rng, setupStream, until } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { MaterializedFeed } = require('../adapters/materialized.js');

const EVENTS = Number(process.env.DS_NODE_DIFF_EVENTS || 3000);
const TYPES = ['user', 'message'];
const KEYS = 150;

test('Postgres and MaterializedState agree on a random stream', async (t) => {
  const { stream, drop } = await setupStream('t_mat', TYPES.map((ty) => [ty, "mode => 'lenient'"]));
  const ds = new DurableState({ stream });
  t.after(async () => {
    await ds.close();
    await drop();
  });
  const feed = new MaterializedFeed(ds);
  const followed = new MaterializedState();
  const sub = await feed.follow(followed);
  await new Promise((resolve) => sub.once('ready', resolve));
  // the same through waiting reads instead of LISTEN (the mode for PgBouncer)
  const waited = new MaterializedState();
  const wsub = await feed.follow(waited, { wait: 1000 });
  await new Promise((resolve) => wsub.once('ready', resolve));

  const rand = rng(20261125);
  const direct = new MaterializedState();
  let applied = 0;
  while (applied < EVENTS) {
    const n = Math.min(EVENTS - applied, 1 + Math.floor(rand() * 50));
    const batch = [];
    for (let i = 0; i < n; i++) {
      const type = TYPES[Math.floor(rand() * TYPES.length)];
      const key = `k${Math.floor(rand() * KEYS)}`;
      const r = rand();
      const operation = r < 0.25 ? 'insert' : r < 0.5 ? 'update' : r < 0.8 ? 'upsert' : 'delete';
      const ev = { type, key, headers: { operation } };
      if (operation !== 'delete') ev.value = randomValue(rand);
      batch.push(ev);
    }
    const res = await ds.apply(batch);
    assert.equal(res.applied, n);
    direct.applyBatch(batch);
    applied += n;
  }
  const tail = await ds.tail();
  assert.equal(Number(tail), EVENTS);
  await until(() => sub.lastOffset === tail, 10000, 'the follower to reach the tail');
  await until(() => wsub.lastOffset === tail, 10000, 'the waiting follower to reach the tail');

  const loaded = new MaterializedState();
  await feed.load(loaded);
  let entities = 0;
  for (const type of TYPES) {
    const expected = Object.fromEntries(direct.getType(type));
    entities += Object.keys(expected).length;
    assert.deepStrictEqual(Object.fromEntries(await ds.getType(type)), expected, `Postgres, type ${type}`);
    assert.deepStrictEqual(Object.fromEntries(followed.getType(type)), expected, `followed, type ${type}`);
    assert.deepStrictEqual(Object.fromEntries(waited.getType(type)), expected, `followed by waiting reads, type ${type}`);
    assert.deepStrictEqual(Object.fromEntries(loaded.getType(type)), expected, `loaded, type ${type}`);
  }
  t.diagnostic(`compared ${EVENTS} events, ${entities} live entities, 4 ways`);
  assert.ok(entities > 50, 'the stream leaves entities to compare');
});
