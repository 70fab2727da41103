// TTLs vanish on time (for reads at once, from the table by the worker with
// a logged delete), and a subscriber sees every change another process
// makes, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { DurableState, setupStream, sleep, until } from './helpers.mjs';

test('TTL entries vanish on time', async (t) => {
  const { stream, drop } = await setupStream('t_ttl', [['sess', "mode => 'lenient'"], ['typing', "mode => 'lenient', default_ttl => '1500 ms'"]]);
  const ds = new DurableState({ stream });
  t.after(async () => {
    await ds.close();
    await drop();
  });
  await ds.put('sess', 'short', { a: 1 }, { ttl: 1500 });
  await ds.put('sess', 'long', { a: 2 }, { ttl: '1 hour' });
  await ds.put('sess', 'forever', { a: 3 });
  await ds.apply({ type: 'typing', key: 'u1', value: true, headers: { operation: 'upsert' } });
  assert.deepStrictEqual(await ds.get('sess', 'short'), { a: 1 });
  assert.equal(await ds.get('typing', 'u1'), true);
  await sleep(1700);
  assert.equal(await ds.get('sess', 'short'), undefined, 'expired for reads');
  assert.equal(await ds.get('typing', 'u1'), undefined, 'default TTL expired for reads');
  assert.deepStrictEqual(await ds.getMany('sess', ['short', 'long', 'forever']), { long: { a: 2 }, forever: { a: 3 } });
  // the worker (it serves this database) deletes them with logged events
  await until(async () => {
    const { events } = await ds.changes({ since: '-1', maxEvents: 100 });
    return events.filter((e) => e.headers.operation === 'delete').length === 2;
  }, 5000, 'the worker to log the two expiries');
  const { events } = await ds.changes({ since: '-1', maxEvents: 100 });
  const deletes = events.filter((e) => e.headers.operation === 'delete').map((e) => `${e.type}/${e.key}`).sort();
  assert.deepStrictEqual(deletes, ['sess/short', 'typing/u1']);
});

test('a subscriber sees every change of another process, in order', async (t) => {
  const N = 500;
  const { stream, drop } = await setupStream('t_sub', [['item', "mode => 'lenient'"]]);
  const ds = new DurableState({ stream });
  t.after(async () => {
    await ds.close();
    await drop();
  });
  const seen = [];
  const sub = ds.subscribe({ onEvents: (events) => { seen.push(...events); } });
  await new Promise((resolve) => sub.once('ready', resolve));
  const script = `
    const { DurableState } = require(${JSON.stringify(new URL('../index.js', import.meta.url).pathname)});
    (async () => {
      const ds = new DurableState({ stream: ${JSON.stringify(stream)} });
      for (let i = 0; i < ${N}; i++) {
        if (i % 7 === 3) await ds.remove('item', 'k' + ((i - 1) % 10));
        else await ds.put('item', 'k' + (i % 10), { seq: i });
      }
      await ds.close();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  await new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', script], { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}`))));
  });
  const tail = await ds.tail();
  await until(() => sub.lastOffset === tail, 5000, 'the subscriber to reach the tail');
  const { events: log } = await ds.changes({ since: '-1', maxEvents: 10000 });
  assert.equal(seen.length, log.length);
  assert.deepStrictEqual(seen, log, 'the subscriber saw the log, in order');
  const seqs = seen.filter((e) => e.headers.operation !== 'delete').map((e) => e.value.seq);
  assert.deepStrictEqual(seqs, [...seqs].sort((a, b) => a - b), 'puts in the writer\'s order');
  assert.equal(seqs.length + seen.filter((e) => e.headers.operation === 'delete').length, seen.length);
  t.diagnostic(`${seen.length} changes seen in order, ${sub.notifications} notifications`);
});
