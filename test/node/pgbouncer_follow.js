#!/usr/bin/env node
'use strict';
/*
 * test/node/pgbouncer_follow.js -- the Node client follows a stream with
 * waiting reads through PgBouncer in transaction mode (test/t/pgbouncer.sh).
 *
 * Two DurableState clients connect through PgBouncer (DS_PGB_PORT, database
 * DS_PGB_DB): a subscriber with subscribe({ wait: 2000 }) and a writer that
 * commits N (60) events, one transaction each, some pausing longer than a
 * waiting read lasts.  Checks: the subscriber gets every event exactly
 * once, in offset order, with their values; a LISTEN subscriber (the
 * default mode) through the same pooler gets nothing after its first
 * catch-up (LISTEN cannot work there: why wait mode exists); wait mode made
 * no connection of its own (its reads go through the pool).
 * Prints `ok - ...` / `not ok - ...` and `N passed, M failed`.
 */
const path = require('node:path');
const { check, note, summary, counts } = require(path.join(__dirname, 'tap.js'));
const { DurableState } = require(path.join(__dirname, '../../clients/node'));

const N = 60;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pgOpts = { host: '127.0.0.1', port: Number(process.env.DS_PGB_PORT), database: process.env.DS_PGB_DB };

async function main() {
  const writer = new DurableState({ pg: pgOpts, stream: 'pgb', max: 2, prepare: false });
  const reader = new DurableState({ pg: pgOpts, stream: 'pgb', max: 2, prepare: false });
  const listener = new DurableState({ pg: pgOpts, stream: 'pgb', max: 1, prepare: false });
  const got = [];
  const heard = [];
  try {
    const since = (await writer.query("SELECT state.tail('pgb') AS t")).rows[0].t;
    const sub = reader.subscribe({ since, wait: 2000, onEvents: (evs) => { got.push(...evs); } });
    const lsub = listener.subscribe({ since, onEvents: (evs) => { heard.push(...evs); } });
    await new Promise((r) => sub.once('ready', r));
    await new Promise((r) => lsub.once('ready', r));
    const t0 = Date.now();
    for (let i = 0; i < N; i++) {
      await writer.apply({ type: 'item', key: `k${i % 9}`, value: { i }, headers: { operation: 'upsert' } });
      if (i % 20 === 19) await sleep(2300);   // longer than one waiting read
      else if (i % 3 === 0) await sleep(5);
    }
    const end = Date.now() + 10000;
    while (got.length < N && Date.now() < end) await sleep(20);
    note(`${got.length} events followed in ${Date.now() - t0} ms through PgBouncer (transaction mode)`);
    const values = got.map((e) => e.value.i);
    check(got.length === N && values.every((v, i) => v === i),
      `wait mode through PgBouncer: every one of ${N} events exactly once, in order`, JSON.stringify(values));
    const offs = got.map((e) => e.headers.offset);
    check(offs.every((o, i) => i === 0 || o > offs[i - 1]), '... at strictly increasing offsets');
    check(sub.reconnects === 0, `... with no error on the way (reconnects ${sub.reconnects})`);
    check(heard.length === 0, `LISTEN mode through the same pooler hears nothing (${heard.length} events): LISTEN needs a session`);
    await sub.close();
    await lsub.close();
  } finally {
    await Promise.all([writer.close(), reader.close(), listener.close()].map((p) => p.catch(() => {})));
  }
}

main().catch((e) => check(false, 'the test ran to its end', e.stack)).finally(() => {
  console.log(summary());
  process.exit(counts.failed === 0 && counts.passed > 0 ? 0 : 1);
});
