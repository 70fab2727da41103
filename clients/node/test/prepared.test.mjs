// The key/value calls run as named prepared statements by default (planned
// once per connection), and as plain queries with prepare: false (what a
// transaction-mode pooler needs); both give the same answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DurableState, setupStream } from './helpers.mjs';

async function prepared(ds) {
  const r = await ds.query("SELECT name FROM pg_prepared_statements WHERE name LIKE 'ds\\_%' ORDER BY name");
  return r.rows.map((row) => row.name);
}

for (const prepare of [true, false]) {
  test(`put/get/getVersioned/increment/remove with prepare: ${prepare}`, async (t) => {
    const { stream, drop } = await setupStream(`t_prep_${prepare}`, [['kv', "mode => 'lenient'"]]);
    // one connection: the statements it prepared are the ones listed
    const ds = new DurableState({ stream, max: 1, prepare });
    t.after(async () => {
      await ds.close();
      await drop();
    });
    const off1 = await ds.put('kv', 'a', { n: 1 });
    const off2 = await ds.put('kv', 'a', { n: 2 }, { expectedVersion: 1 });
    assert.ok(off2 > off1, `offsets grow: ${off1} < ${off2}`);
    assert.deepStrictEqual(await ds.get('kv', 'a'), { n: 2 });
    assert.deepStrictEqual(await ds.getVersioned('kv', 'a'), { value: { n: 2 }, version: 2 });
    assert.equal(await ds.increment('kv', 'a', 'n', 5), 7);
    assert.equal(await ds.remove('kv', 'a'), true);
    assert.equal(await ds.get('kv', 'a'), undefined);
    assert.deepStrictEqual(await prepared(ds), prepare
      ? ['ds_get', 'ds_get_versioned', 'ds_increment', 'ds_put', 'ds_remove'] : []);
    // (pg's pool drops a connection whose query failed: this comes last)
    await ds.put('kv', 'a', { n: 1 });
    await assert.rejects(ds.put('kv', 'a', { n: 0 }, { expectedVersion: 0 }),
      (err) => err.code === '40001' && /expected version 0, found 1/.test(err.message));
  });
}
