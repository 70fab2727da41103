// getType, snapshot and snapshotBatches read through a cursor: every row
// comes, in order, batch by batch, the pool's client goes back to the pool,
// and an error (an unknown stream) rejects without keeping a client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DurableState, pg, setupStream } from './helpers.mjs';

const N = 2500;

test('getType, snapshot and snapshotBatches read through a cursor', async (t) => {
  const { stream, drop } = await setupStream('t_cur', [['item', "mode => 'lenient'"], ['aaa', "mode => 'lenient'"]]);
  const ds = new DurableState({ stream, max: 2 });
  t.after(async () => {
    await ds.close();
    await drop();
  });
  const events = [];
  for (let i = 0; i < N; i++) {
    events.push({ type: 'item', key: `k${String(i).padStart(5, '0')}`, value: { i }, headers: { operation: 'insert' } });
  }
  events.push({ type: 'aaa', key: 'only', value: null, headers: { operation: 'insert' } });
  const { lastOffset } = await ds.apply(events);

  const items = await ds.getType('item');
  assert.equal(items.size, N);
  assert.deepEqual(items.get('k01234'), { i: 1234 });
  assert.deepEqual([...items.keys()].slice(0, 2), ['k00000', 'k00001']);

  const sizes = [];
  const seen = [];
  const { offset } = await ds.snapshotBatches({ batchSize: 1000 }, async (batch) => {
    sizes.push(batch.length);
    seen.push(...batch);
  });
  assert.deepEqual(sizes, [1000, 1000, 503]);
  assert.equal(offset, lastOffset);
  assert.equal(seen[0].headers.control, 'snapshot-start');
  assert.deepEqual(seen[1], { type: 'aaa', key: 'only', value: null, headers: { operation: 'insert' } });
  assert.equal(seen[2].key, 'k00000');
  assert.equal(seen[seen.length - 1].headers.control, 'snapshot-end');

  const snap = await ds.snapshot();
  assert.equal(snap.offset, lastOffset);
  assert.deepEqual(snap.events, seen);

  // on a client of the caller's: the same, and the client stays usable
  const c = new pg.Client();
  await c.connect();
  try {
    const mine = await ds.snapshot({}, c);
    assert.equal(mine.events.length, N + 3);
    assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
  } finally {
    await c.end();
  }

  await assert.rejects(ds.snapshot({ stream: `${stream}_none` }), /does not exist/);
  await assert.rejects(ds.getType('item', { stream: `${stream}_none` }), /does not exist/);
  // every client went back to the pool
  assert.equal(ds.pool.totalCount - ds.pool.idleCount, 0);
  assert.equal((await ds.getType('aaa')).size, 1);
});
