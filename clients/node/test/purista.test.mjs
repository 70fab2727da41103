// The PURISTA state store contract (as @purista/redis-state-store's own
// integration test states it), plus several names at once and TTLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { DurableState, setupStream, sleep } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { DurableStateStore } = require('../adapters/purista.js');

test('PURISTA state store', async (t) => {
  const { stream, drop } = await setupStream('t_purista', [['purista_state', "mode => 'lenient'"]]);
  const client = new DurableState({ stream });
  t.after(async () => {
    await client.close();
    await drop();
  });

  await t.test('set, get and remove values', async () => {
    const store = new DurableStateStore({ config: { client }, logLevel: 'fatal' });
    assert.equal(await store.setState('myState', { some: 'value' }), undefined);
    assert.deepStrictEqual(await store.getState('myState'), { myState: { some: 'value' } });
    assert.equal(await store.removeState('myState'), undefined);
    assert.deepStrictEqual(await store.getState('myState'), { myState: undefined });
    assert.equal(await store.destroy(), undefined);
  });

  await t.test('throws on disabled features', async () => {
    const store = new DurableStateStore({ enableGet: false, enableRemove: false, enableSet: false, config: { client }, logLevel: 'fatal' });
    await assert.rejects(store.setState('myState', { some: 'value' }), /set state at store is disabled by config/);
    await assert.rejects(store.getState('myState'), /get state from store is disabled by config/);
    await assert.rejects(store.removeState('myState'), /remove state from store is disabled by config/);
    assert.equal(await store.destroy(), undefined);
  });

  await t.test('several names at once, any JSON value, each write logged', async () => {
    const store = new DurableStateStore({ config: { client }, logLevel: 'fatal' });
    const before = Number(await client.tail());
    await store.setState('session:abc123', { userId: 'user-456', cart: [] });
    await store.setState('counter:requests', 41);
    await store.setState('flag', false);
    await store.setState('nothing', null);
    const current = await store.getState('counter:requests');
    await store.setState('counter:requests', current['counter:requests'] + 1);
    assert.deepStrictEqual(await store.getState('session:abc123', 'counter:requests', 'flag', 'nothing', 'missing'), {
      'session:abc123': { userId: 'user-456', cart: [] },
      'counter:requests': 42,
      flag: false,
      nothing: null,
      missing: undefined,
    });
    assert.equal(Number(await client.tail()) - before, 5);
    await store.destroy();
  });

  await t.test('TTLs: per call and from the store config', async () => {
    const store = new DurableStateStore({ config: { client, ttl: 1500 }, logLevel: 'fatal' });
    await store.setState('job:1', { status: 'running' });
    await store.setState('job:2', { status: 'queued' }, { ttl: '1 hour' });
    assert.deepStrictEqual(Object.keys(await store.getState('job:1', 'job:2')), ['job:1', 'job:2']);
    await sleep(1700);
    assert.deepStrictEqual(await store.getState('job:1', 'job:2'), { 'job:1': undefined, 'job:2': { status: 'queued' } });
    await store.destroy();
  });

  await t.test('database errors become UnhandledError', async () => {
    const store = new DurableStateStore({ config: { client, type: 'no_such_type' }, logLevel: 'fatal' });
    // (PURISTA's UnhandledError; instanceof would compare the CommonJS class
    // the adapter uses with the ES module one a test would import)
    const unhandled = (re) => (err) => err.name === 'UnhandledError' && err.errorCode === 500 && re.test(err.message);
    await assert.rejects(store.setState('x', 1), unhandled(/error in state store setting value x/));
    await assert.rejects(store.getState('x'), unhandled(/error in state store getting values x/));
    await assert.rejects(store.removeState('x'), unhandled(/error in state store removing value x/));
    await store.destroy();
  });
});
