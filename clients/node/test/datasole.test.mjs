// The datasole-shaped StateBackend and the SessionStore: get/set/delete,
// subscribe and publish across processes' connections, per-user versions
// and the onChange stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { DurableState, setupStream, until } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { DurableStateBackend, SessionStore } = require('../adapters/datasole.js');

test('StateBackend', async (t) => {
  const { stream, drop } = await setupStream('t_dsb', [['kv', "mode => 'lenient'"]]);
  const a = new DurableState({ stream }); // one app server
  const b = new DurableState({ stream }); // another
  const backA = new DurableStateBackend(a);
  const backB = new DurableStateBackend(b);
  t.after(async () => {
    await backA.close();
    await backB.close();
    await a.close();
    await b.close();
    await drop();
  });
  const got = [];
  const all = [];
  const unsubscribe = backA.subscribe('room:1', (key, value) => got.push([key, value]));
  backA.subscribe('*', (key, value) => all.push([key, value]));
  await backA.connect();

  assert.equal(await backB.get('room:1'), undefined);
  await backB.set('room:1', { users: ['ann'] });
  await backB.set('room:2', { users: [] });
  assert.deepStrictEqual(await backA.get('room:1'), { users: ['ann'] });
  await backB.publish('room:1', { typing: 'ann' });
  assert.equal(await backB.delete('room:1'), true);
  assert.equal(await backB.delete('room:1'), false);
  await until(() => got.length === 3, 5000, 'three deliveries for room:1');
  assert.deepStrictEqual(got, [['room:1', { users: ['ann'] }], ['room:1', { typing: 'ann' }], ['room:1', undefined]]);
  await until(() => all.length === 4, 5000, 'four deliveries for *');
  unsubscribe();
  await backB.set('room:1', { users: ['bob'] });
  await until(() => all.length === 5, 5000, 'the fifth delivery');
  assert.equal(got.length, 3, 'no delivery after unsubscribe');
  // set with a TTL
  await backB.set('presence:ann', true, { ttl: 1500 });
  assert.equal(await backA.get('presence:ann'), true);
  await new Promise((r) => setTimeout(r, 1700));
  assert.equal(await backA.get('presence:ann'), undefined);
});

test('SessionStore', async (t) => {
  const { stream, drop } = await setupStream('t_dss', [['session', "mode => 'lenient'"]]);
  const a = new DurableState({ stream });
  const b = new DurableState({ stream });
  const sessA = new SessionStore(a);
  const sessB = new SessionStore(b);
  t.after(async () => {
    await sessA.close();
    await sessB.close();
    await a.close();
    await b.close();
    await drop();
  });
  const changes = [];
  sessA.onChange((userId, key, value, version) => changes.push([userId, key, value, version]));
  await sessA.ready();

  assert.equal(await sessB.set('user-123', 'theme', 'dark'), 1);
  assert.equal(await sessB.set('user-123', 'theme', 'light'), 2);
  assert.equal(await sessB.set('user/odd:id', 'a/b', { x: 1 }), 1);
  assert.equal(await sessA.get('user-123', 'theme'), 'light');
  assert.deepStrictEqual(await sessA.getVersioned('user/odd:id', 'a/b'), { value: { x: 1 }, version: 1 });
  await assert.rejects(sessA.set('user-123', 'theme', 'blue', { expectedVersion: 1 }), (e) => e.code === '40001');
  assert.equal(await sessA.set('user-123', 'theme', 'blue', { expectedVersion: 2 }), 3);
  // concurrent writers without an expected version both land, in some order
  const [v1, v2] = await Promise.all([sessA.set('user-123', 'n', 1), sessB.set('user-123', 'n', 2)]);
  assert.deepStrictEqual([v1, v2].sort(), [1, 2]);
  assert.equal(await sessB.delete('user-123', 'theme'), true);
  await until(() => changes.length === 7, 5000, 'seven changes');
  assert.deepStrictEqual(changes.slice(0, 4), [
    ['user-123', 'theme', 'dark', 1],
    ['user-123', 'theme', 'light', 2],
    ['user/odd:id', 'a/b', { x: 1 }, 1],
    ['user-123', 'theme', 'blue', 3],
  ]);
  assert.deepStrictEqual(changes.slice(4, 6).map((c) => c[3]), [1, 2], 'versions in commit order');
  assert.deepStrictEqual(changes[6], ['user-123', 'theme', undefined, 0]);
});
