// Messages (state.publish) reach a subscriber between the events they
// follow and the ones after them: a writer interleaves puts and publishes,
// in separate transactions, in one transaction together, and around
// rolled-back batches (gaps in the offsets), while the subscriber reads in
// small pages; every delivery carries a sequence number that must come out
// in the order the writer made them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DurableState, pg, rng, setupStream, until } from './helpers.mjs';

const N = 600;

for (const notify of ['commit', 'worker']) {
  test(`messages keep their place among events (notify ${notify}, pages of 3)`, async (t) => {
    const { stream, drop } = await setupStream('t_pub', [['kv', "mode => 'lenient'"]]);
    const ds = new DurableState({ stream });
    const writer = new pg.Client({ options: `-c durable_state.notify=${notify}` });
    await writer.connect();
    const seen = [];
    const sub = ds.subscribe({
      pageSize: 3,
      onEvents: (events) => { for (const e of events) seen.push(['event', e.value.n]); },
      onMessage: (m) => { seen.push(['message', m.message.n]); },
    });
    t.after(async () => {
      await sub.close();
      await writer.end();
      await ds.close();
      await drop();
    });
    await new Promise((resolve) => sub.once('ready', resolve));

    const rand = rng(20261203);
    const put = (n) => writer.query("SELECT state.put('kv', $1, $2::jsonb, NULL, $3)",
      [`k${n % 17}`, JSON.stringify({ n }), stream]);
    const publish = (n) => writer.query("SELECT state.publish('topic', $1::jsonb, $2)", [JSON.stringify({ n }), stream]);
    let expectEvents = 0;
    let expectMessages = 0;
    for (let n = 0; n < N; n++) {
      const r = rand();
      if (r < 0.45) {
        await put(n);
        expectEvents++;
      } else if (r < 0.8) {
        await publish(n);
        expectMessages++;
      } else if (r < 0.9) {
        // a write and a message in one transaction, the message first or last
        await writer.query('BEGIN');
        if (r < 0.85) {
          await put(n);
          await publish(n + 0.5);
        } else {
          await publish(n);
          await put(n + 0.5);
        }
        await writer.query('COMMIT');
        expectEvents++;
        expectMessages++;
      } else {
        // a rolled-back batch leaves a gap the next message may point into
        await writer.query('BEGIN');
        await put(-1);
        await writer.query('ROLLBACK');
        await publish(n);
        expectMessages++;
      }
      if (rand() < 0.1) await new Promise((r2) => setTimeout(r2, 2));
    }
    await until(() => seen.length === expectEvents + expectMessages, 20000,
      `${expectEvents} events and ${expectMessages} messages`);
    const order = seen.map(([, n]) => n);
    for (let i = 1; i < order.length; i++) {
      assert.ok(order[i] > order[i - 1],
        `delivery ${i} (${seen[i][0]} ${order[i]}) came after ${seen[i - 1][0]} ${order[i - 1]}`);
    }
    assert.equal(seen.filter(([k]) => k === 'event').length, expectEvents);
    assert.ok(!order.includes(-1), 'no rolled-back event delivered');
  });
}
