// Shared by the client's tests: a DurableState on the cluster in PG* and
// collections on a stream of the test's own, dropped afterwards.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
export const { DurableState } = require('../index.js');
export const pg = require('pg');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* A seeded PRNG, so that a failing stream can be replayed. */
export const { rng, randomValue } = require('./helpers/prng.js');

/* Creates the collections ([name, type, options] with sql options text) on a fresh stream. */
export async function setupStream(prefix, collections) {
  const stream = `${prefix}_${process.pid}_${Date.now() % 100000}`;
  const c = new pg.Client();
  await c.connect();
  await c.query('CREATE EXTENSION IF NOT EXISTS durable_state');
  for (const [type, opts] of collections) {
    await c.query(`SELECT state.create_collection($1, $2, stream => $3${opts ? `, ${opts}` : ''})`,
      [`${stream}_${type}`, type, stream]);
  }
  await c.end();
  return {
    stream,
    async drop() {
      const d = new pg.Client();
      await d.connect();
      for (const [type] of collections) {
        await d.query('SELECT state.drop_collection($1, $2, drop_table => true)', [`${stream}_${type}`, stream]);
      }
      for (const t of ['state.log', 'state._txids', 'state._expiry']) {
        await d.query(`DELETE FROM ${t} WHERE stream_id = (SELECT id FROM state._streams WHERE name = $1)`, [stream]);
      }
      await d.query('DELETE FROM state._streams WHERE name = $1', [stream]);
      await d.end();
    },
  };
}

/* Waits until cond() is true (polled), or fails after ms. */
export async function until(cond, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}
