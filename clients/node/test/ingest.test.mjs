// ingest(): COPY state.ingest FROM STDIN from the client, events from an
// async iterable or NDJSON bytes from a Readable, atomic, exactly once with
// a source offset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { DurableState, setupStream } from './helpers.mjs';

const N = 25000;

async function* events(n, from = 0) {
  for (let i = from; i < n; i++) {
    const k = `k${i % 5000}`;
    yield { type: 'doc', key: k, value: { i, s: `line "${i}"\\ é\n😀` }, headers: { operation: 'upsert' } };
  }
}

test('ingest: an async iterable in batches, a Readable of NDJSON cut anywhere, errors, source offsets', async (t) => {
  const { stream, drop } = await setupStream('t_ingest', [['doc', "mode => 'lenient'"]]);
  const ds = new DurableState({ stream, max: 2 });
  t.after(async () => {
    await ds.close();
    await drop();
  });

  const r = await ds.ingest(events(N), { batchEvents: 1000, sourceOffset: 's1' });
  assert.deepStrictEqual(r, { applied: N });
  assert.equal(Number(await ds.tail()), N, 'one logged event per line');
  const all = await ds.getType('doc');
  assert.equal(all.size, 5000);
  assert.deepStrictEqual(all.get('k4999'), { i: N - 1, s: `line "${N - 1}"\\ é\n😀` });

  // the same input again: at the recorded source offset, skipped
  assert.deepStrictEqual(await ds.ingest(events(N), { sourceOffset: 's1' }), { applied: 0 });

  // NDJSON bytes cut at odd places (inside strings, inside a multi-byte character)
  let text = '';
  for await (const ev of events(N + 300, N)) text += `${JSON.stringify(ev)}\n`;
  const bytes = Buffer.from(text);
  const chunks = [];
  for (let i = 0; i < bytes.length; i += 4093) chunks.push(bytes.subarray(i, i + 4093));
  assert.deepStrictEqual(await ds.ingest(Readable.from(chunks), { sourceOffset: 's2' }), { applied: 300 });
  assert.deepStrictEqual(await ds.get('doc', `k${(N + 299) % 5000}`), { i: N + 299, s: `line "${N + 299}"\\ é\n😀` });

  // a bad line after many good ones: the whole input is refused, nothing changes
  const before = await ds.tail();
  async function* bad() {
    yield* events(N + 2500, N + 300);
    yield { type: 'doc', key: 'x', headers: { operation: 'frobnicate' } };
    yield* events(N + 2600, N + 2500);
  }
  await assert.rejects(ds.ingest(bad(), { batchEvents: 500, sourceOffset: 's3' }),
    (err) => err.code === '22023' && /event 2200\b/.test(err.message) && /frobnicate/.test(err.message));
  assert.equal(await ds.tail(), before, 'no event of the refused input is logged');
  assert.deepStrictEqual(await ds.get('doc', 'k0'), { i: 25000, s: 'line "25000"\\ é\n😀' });
  // the pool still serves
  assert.deepStrictEqual(await ds.ingest(events(N + 2310, N + 2300), { sourceOffset: 's3' }), { applied: 10 });
  await assert.rejects(ds.ingest([], { batchEvents: 0 }), RangeError);
});
