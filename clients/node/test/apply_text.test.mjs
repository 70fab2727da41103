// apply() sends JSON text to state.apply_text (the server's text path),
// never a $1::jsonb parameter: seen in the statements a wrapped pool is
// given.  Its results and errors are those of state.apply(jsonb) on a twin
// stream: same counts, same SQLSTATE, message and detail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { DurableState, pg, setupStream } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { APPLY_TEXT_SQL } = require('../index.js');

/* A pool that records what it is asked to run. */
function recordingPool(pool, seen) {
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === 'query') {
        return (sql, params) => {
          seen.push(typeof sql === 'string' ? { sql, params } : { sql: sql.text, params: sql.values, name: sql.name });
          return target.query(sql, params);
        };
      }
      const v = Reflect.get(target, prop);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

async function outcome(fn) {
  try {
    return { ok: await fn() };
  } catch (err) {
    return { code: err.code, message: err.message, detail: err.detail, hint: err.hint };
  }
}

test('apply sends JSON text to state.apply_text, with the results and errors of state.apply', async (t) => {
  const cols = [['user', null], ['doc', "mode => 'lenient'"]];
  const a = await setupStream('t_text', cols);
  const b = await setupStream('t_jsonb', cols);
  const pool = new pg.Pool({ max: 2 });
  const seen = [];
  const ds = new DurableState({ pool: recordingPool(pool, seen), stream: a.stream });
  const unprepared = new DurableState({ pool: recordingPool(pool, seen), stream: a.stream, prepare: false });
  t.after(async () => {
    await pool.end();
    await a.drop();
    await b.drop();
  });
  const direct = async (events, sourceOffset = null) => {
    const r = await pool.query('SELECT applied, skipped, last_offset FROM state.apply($1::jsonb, $2, $3)',
      [JSON.stringify(events), b.stream, sourceOffset]);
    const row = r.rows[0];
    return { applied: Number(row.applied), skipped: Number(row.skipped), lastOffset: row.last_offset };
  };
  const cases = [
    [[{ type: 'user', key: 'u1', value: { name: 'Ada ✓', n: 1.5e3 }, headers: { operation: 'insert', txid: 'tx-a' } },
      { type: 'doc', key: 'd1', value: [1, 'two', null, { 'x"y': '\\' }], headers: { operation: 'upsert' } }]],
    [{ type: 'user', key: 'u2', value: { name: 'single event object' }, headers: { operation: 'insert' } }],
    [[]],
    // errors: a duplicate insert, a missing key (strict), a malformed event, not an event at all
    [[{ type: 'doc', key: 'd2', value: 1, headers: { operation: 'upsert' } },
      { type: 'user', key: 'u1', value: {}, headers: { operation: 'insert' } }]],
    [{ type: 'user', key: 'nobody', headers: { operation: 'update' }, value: {} }],
    [[{ type: 'user', value: {}, headers: { operation: 'insert' } }]],
    [[{ type: 'nosuchtype', key: 'k', value: {}, headers: { operation: 'insert' } }]],
    [[{ headers: { control: 'snapshot-end' } }]],
    [42],
    [null],
    [[17]],
    // exactly-once resume: the second is skipped
    [[{ type: 'doc', key: 'd3', value: 3, headers: { operation: 'upsert' } }], '00000000000000000005'],
    [[{ type: 'doc', key: 'd3', value: 4, headers: { operation: 'upsert' } }], '00000000000000000005'],
    [[{ type: 'doc', key: 'd3', value: 5, headers: { operation: 'upsert' } }], 'bad/offset'],
  ];
  let errors = 0;
  for (const [i, [events, sourceOffset]] of cases.entries()) {
    const n = seen.length;
    // every other call unprepared (prepare: false, for transaction poolers)
    const client = i % 2 ? unprepared : ds;
    const got = await outcome(() => client.apply(events, { sourceOffset }));
    const want = await outcome(() => direct(events, sourceOffset ?? null));
    if (got.code) errors++;
    for (const f of ['message', 'detail', 'hint']) if (got[f]) got[f] = got[f].replaceAll(a.stream, b.stream);
    assert.deepStrictEqual(got, want, `apply(${JSON.stringify(events)})`);
    const sent = seen.slice(n);
    assert.equal(sent.length, 1, 'one statement per apply');
    if (events !== null && typeof events === 'object') {
      assert.equal(sent[0].sql, APPLY_TEXT_SQL);
      assert.match(sent[0].sql, /state\.apply_text\(\$1, \$2, \$3\)/);
      assert.doesNotMatch(sent[0].sql, /jsonb/);
      assert.equal(typeof sent[0].params[0], 'string');
      assert.ok(sent[0].params[0].startsWith('['), 'sent as a JSON array');
      assert.equal(sent[0].name, client === ds ? 'ds_apply_text' : undefined, 'a named prepared statement unless prepare is off');
    }
  }
  assert.ok(errors >= 7, `the cases raise errors (${errors})`);
  for (const type of ['user', 'doc']) {
    assert.deepStrictEqual(Object.fromEntries(await ds.getType(type)),
      Object.fromEntries(await new DurableState({ pool, stream: b.stream }).getType(type)), `type ${type}`);
  }
  t.diagnostic(`${cases.length} calls compared, ${errors} errors`);

  // applyText: text as it is, a JSON array or NDJSON
  const nd = '{"type":"doc","key":"n1","value":1,"headers":{"operation":"upsert"}}\n\n'
    + '{"type":"doc","key":"n2","value":2,"headers":{"operation":"upsert"}}\n';
  assert.deepStrictEqual((await ds.applyText(nd)).applied, 2);
  assert.equal(seen[seen.length - 1].params[0], nd);
  const bad = await outcome(() => ds.applyText('{"type":"doc","key":"n3","value":1,"headers":{"operation":"upsert"}}\n{"type":'));
  assert.equal(bad.code, '22P02');
  assert.match(bad.message, /^event 1 \(line 2\)/);
});
