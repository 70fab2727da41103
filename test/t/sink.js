#!/usr/bin/env node
// test/t/sink.js -- the Durable Streams sink (clients/node/sink.js, its CLI
// bin/durable-state-sink.js) against the reference server
// (@durable-streams/server, in memory, a devDependency of clients/node,
// pinned in its lockfile), exactly once across crashes:
//   * the reference server runs in this process; a JSON stream gets
//     DS_SINK_EVENTS (default 200,000) State Protocol events appended by
//     HTTP POST in batches of 1..400 -- random inserts, updates, upserts
//     and deletes of 2,000 keys in each of two types ('user': a generated
//     typed table, 'message': a document collection; both lenient, as the
//     reference MaterializedState), every event with a txid of its own,
//     paced over about 12 s;
//   * meanwhile the sink runs as a child process (the CLI, following live)
//     and is killed with SIGKILL 5 times -- each time 0..1.5 s (random)
//     after the run first committed something, so mid-part of a catch-up,
//     between parts, or while following live -- and started again after
//     0..1 s (a backlog waits for it); the last run goes on until Postgres's
//     source offset is the remote tail, then gets SIGTERM.
// Checks: every kill hit a running sink that had committed something; the
// source offset never went back (a killed run's last statement may still
// commit after the kill: its backend finishes it, and the sink's check
// under the stream's lock is what keeps the next run from repeating it);
// the tables equal the reference MaterializedState fold of the remote stream
// (read back from the server); the log holds exactly the remote's events,
// in its order, once each (count, distinct txids, state._txids naming each
// txid once, and event i of the log = remote event i); sampled txids are
// committed; the stream's source offset is the remote tail; the sink
// reported its lag (a line with events behind > 0, and 0 at the end) and
// ended cleanly on SIGTERM.
//
// Environment: the PG* variables of the test cluster (test/run.sh);
// DS_SINK_EVENTS, DS_SINK_SEED, DS_SINK_APPEND_MS (how long the appends
// take, about: 12,000).  Prints `ok - ...` / `not ok - ...` and
// `N passed, M failed`.
'use strict';
const path = require('path');
const { spawn } = require('child_process');
const { createRequire } = require('module');

const ROOT = path.resolve(__dirname, '../..');
const clientRequire = createRequire(path.join(ROOT, 'clients/node/package.json'));
const { DurableStreamTestServer } = clientRequire('@durable-streams/server');
const { DurableStream } = clientRequire('@durable-streams/client');
const { MaterializedState } = clientRequire('@durable-streams/state');
const pg = clientRequire('pg');
const { DurableState } = require(path.join(ROOT, 'clients/node/index.js'));
const { check, note, summary, counts } = require('../node/tap.js');
const { rng, randomValue } = require('../node/prng.js');

const EVENTS = Number(process.env.DS_SINK_EVENTS || 200000);
const SEED = Number(process.env.DS_SINK_SEED || Date.now() % 1000000);
const KILLS = 5;
const APPEND_MS = Number(process.env.DS_SINK_APPEND_MS || 12000);
const KEYS = 2000;
const STREAM = `sink_${process.pid}`;
const CLI = path.join(ROOT, 'clients/node/bin/durable-state-sink.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const USER_SCHEMA = {
  type: 'object',
  required: ['name'],
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, n: { type: 'integer' },
    score: { type: 'number' }, active: { type: 'boolean' }, tags: { type: 'array' },
  },
};

function userValue(rand, key) {
  const v = { id: key, name: ['Ada', 'Grace', 'Edsger', 'Барбара', '李'][Math.floor(rand() * 5)] };
  if (rand() < 0.8) v.n = Math.floor(rand() * 1e9) - 5e8;
  if (rand() < 0.6) v.score = Math.round(rand() * 1e5) / 100;
  if (rand() < 0.5) v.active = rand() < 0.5;
  if (rand() < 0.4) v.tags = Array.from({ length: Math.floor(rand() * 3) }, (_, i) => `t${i}`);
  return v;
}

function randomEvent(rand, i) {
  const type = rand() < 0.5 ? 'user' : 'message';
  const key = `${type[0]}${Math.floor(rand() * KEYS)}`;
  const r = rand();
  const operation = r < 0.3 ? 'insert' : r < 0.55 ? 'update' : r < 0.8 ? 'upsert' : 'delete';
  const ev = { type, key, headers: { operation, txid: `${STREAM}-${i}` } };
  if (operation !== 'delete') ev.value = type === 'user' ? userValue(rand, key) : randomValue(rand);
  return ev;
}

/* Every sink process started, killed at exit whatever happens (no orphan keeps retrying). */
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1)); // the 'exit' handler runs

/* The sink CLI as a child process; its stderr lines (JSON stats with --json) are kept. */
function startSink(url, log) {
  const child = spawn(process.execPath, [CLI, url, '--stream', STREAM, '--json', '--lag-interval', '250'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
  const run = { child, lines: [], exited: null };
  let buf = '';
  child.stderr.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      run.lines.push(line);
      log.push(line);
    }
  });
  children.add(child);
  run.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  return run;
}

function statsOf(line) {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}

async function main() {
  const t0 = Date.now();
  note(`seed ${SEED}, ${EVENTS} events, ${KILLS} kills, stream ${STREAM}`);
  const rand = rng(SEED);
  const admin = new pg.Client();
  await admin.connect();
  await admin.query('CREATE EXTENSION IF NOT EXISTS durable_state');
  await admin.query(`SELECT state.create_collection($1, 'user', stream => $2, mode => 'lenient', schema => $3)`,
    [`${STREAM}_user`, STREAM, JSON.stringify(USER_SCHEMA)]);
  await admin.query(`SELECT state.create_collection($1, 'message', stream => $2, mode => 'lenient')`,
    [`${STREAM}_message`, STREAM]);

  const server = new DurableStreamTestServer({ port: 0, host: '127.0.0.1' });
  await server.start();
  const url = `${server.url}/v1/stream/${STREAM}`;
  await DurableStream.create({ url, contentType: 'application/json', warnOnHttp: false });

  // the appender: batches of 1..400 events, paced so that the sink follows live and catches up
  let appended = 0;
  let posts = 0;
  let appendRetries = 0;
  const appender = (async () => {
    while (appended < EVENTS) {
      const n = Math.min(EVENTS - appended, 1 + Math.floor(rand() * 400));
      const batch = [];
      for (let i = 0; i < n; i++) batch.push(randomEvent(rand, appended + i));
      // an idempotent producer (Producer-Id/-Epoch/-Seq): a POST retried after a lost
      // connection is appended once
      const body = JSON.stringify(batch);
      for (let attempt = 1; ; attempt++) {
        try {
          const r = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json',
            'producer-id': 'sink-test', 'producer-epoch': '0', 'producer-seq': String(posts) } });
          if (r.status !== 204 && r.status !== 200) throw new Error(`append: HTTP ${r.status} ${await r.text()}`);
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
          appendRetries++;
          await sleep(50 * attempt);
        }
      }
      appended += n;
      posts++;
      // paced: the appends span about APPEND_MS, so the sink is killed while it follows live
      await sleep(Math.max(0, t0 + appended / EVENTS * APPEND_MS - Date.now()));
    }
  })();
  appender.catch(() => {}); // awaited below

  const sourceOffset = async () => {
    const r = await admin.query('SELECT source_offset FROM state.streams WHERE stream = $1', [STREAM]);
    return r.rows[0].source_offset;
  };
  const log = [];
  const runs = [];
  let resumedOk = true;
  let progressed = 0;
  let lateCommits = 0;
  let killedRunning = 0;
  let before = null;
  for (let k = 0; k <= KILLS; k++) {
    const at = await sourceOffset();
    // a restart resumes from what Postgres has, never below what an earlier run applied
    if (before !== null && at < before) resumedOk = false;
    // the killed run's last statement may commit after the kill (its backend finishes it)
    if (before !== null && at !== before) lateCommits++;
    const run = startSink(url, log);
    runs.push(run);
    if (k === KILLS) break;
    // killed at a random moment once it has committed something (a part of a
    // catch-up, a live batch), so that every run counts
    const end = Date.now() + 60000;
    while ((await sourceOffset()) === at && Date.now() < end) await sleep(20);
    if ((await sourceOffset()) !== at) progressed++;
    await sleep(Math.floor(rand() * 1500));
    const state = await Promise.race([run.exited, sleep(0).then(() => 'running')]);
    if (state === 'running') killedRunning++;
    run.child.kill('SIGKILL');
    await run.exited;
    before = await sourceOffset();
    note(`kill ${k + 1}: source offset ${at} -> ${before}`);
    // a backlog, sometimes: the next run starts with a catch-up
    await sleep(Math.floor(rand() * 1000));
  }
  await appender;
  note(`appended ${appended} events in ${posts} POSTs, ${appendRetries} retried (${((Date.now() - t0) / 1000).toFixed(1)} s since the start)`);
  check(killedRunning === KILLS, `the sink was SIGKILLed ${KILLS} times while running, and restarted`,
    `killed running: ${killedRunning}`);
  check(progressed === KILLS, 'every killed run had committed something first', `${progressed} of ${KILLS}`);
  check(resumedOk, 'the source offset never went back across a kill and restart');
  note(`${lateCommits} killed runs' last batches committed after the kill`);

  // the last run catches up
  const head = await fetch(url, { method: 'HEAD' });
  const tail = head.headers.get('stream-next-offset');
  const last = runs[runs.length - 1];
  const deadline = Date.now() + 150000;
  let caughtUp = false;
  while (Date.now() < deadline) {
    if ((await sourceOffset()) === tail) {
      caughtUp = true;
      break;
    }
    const ex = await Promise.race([last.exited, sleep(200).then(() => null)]);
    if (ex) break;
  }
  const catchUpSecs = (Date.now() - t0) / 1000;
  check(caughtUp, `the sink reached the remote tail ${tail}`, `source offset ${await sourceOffset()}`);
  await sleep(600); // a lag line at the tail
  last.child.kill('SIGTERM');
  const ex = await Promise.race([last.exited, sleep(10000).then(() => ({ code: 'timeout' }))]);
  check(ex.code === 0, 'the sink exits 0 on SIGTERM', JSON.stringify(ex) + '\n' + last.lines.slice(-5).join('\n'));
  if (ex.code === 'timeout') last.child.kill('SIGKILL');

  // the reference fold of what the server serves
  // (one catch-up read; the client's res.json() spreads the items into a call and overflows the stack at 200k)
  const rr = await fetch(`${url}?offset=-1`);
  const remote = await rr.json();
  check(rr.headers.get('stream-next-offset') === tail && rr.headers.has('stream-up-to-date'),
    'one catch-up read of the remote stream gets it all');
  const folded = new MaterializedState();
  folded.applyBatch(remote);
  check(remote.length === EVENTS, `the remote stream holds the ${EVENTS} events appended`, `${remote.length}`);

  const ds = new DurableState({ stream: STREAM, max: 2 });
  let entities = 0;
  for (const type of ['user', 'message']) {
    const want = Object.fromEntries(folded.getType(type));
    const got = Object.fromEntries(await ds.getType(type));
    entities += Object.keys(want).length;
    let diff = null;
    for (const key of new Set([...Object.keys(want), ...Object.keys(got)])) {
      if (JSON.stringify(want[key]) !== JSON.stringify(got[key])
          && !isDeepStrictEqual(want[key], got[key])) {
        diff = `${key}: postgres ${JSON.stringify(got[key])}, fold ${JSON.stringify(want[key])}`;
        break;
      }
    }
    check(diff === null, `type ${type}: the Postgres table equals the MaterializedState fold (${Object.keys(want).length} entities)`, diff);
  }

  // exactly once: the log is the remote's events, once each, in order
  const sid = (await admin.query('SELECT id FROM state._streams WHERE name = $1', [STREAM])).rows[0].id;
  const lc = await admin.query(
    `SELECT count(*)::bigint AS n, count(DISTINCT e.event->'headers'->>'txid')::bigint AS txids,
            count(*) FILTER (WHERE e.event->'headers'->>'control' IS NOT NULL)::bigint AS controls
       FROM state.changes($1, '-1', 10000000) e`, [STREAM]);
  check(Number(lc.rows[0].n) === remote.length && Number(lc.rows[0].txids) === remote.length
    && Number(lc.rows[0].controls) === 0,
  `the log holds exactly the remote's ${remote.length} events, each txid once`, JSON.stringify(lc.rows[0]));
  let firstDiff = -1;
  let i = 0;
  const cur = await admin.query(`SELECT e.event->'headers'->>'txid' AS txid, e.event->>'key' AS key
                                   FROM state.changes($1, '-1', 10000000) e`, [STREAM]);
  for (const row of cur.rows) {
    const ev = remote[i];
    if (!ev || row.txid !== ev.headers.txid || row.key !== ev.key) {
      firstDiff = i;
      break;
    }
    i++;
  }
  check(firstDiff === -1 && i === remote.length, 'event i of the log is event i of the remote stream',
    `first difference at ${firstDiff}`);
  const tx = await admin.query(
    `SELECT count(*)::bigint AS rows, count(DISTINCT h)::bigint AS distinct_txids
       FROM state._txids t, unnest(coalesce(t.packed, ARRAY[t.hash])) h WHERE stream_id = $1`, [sid]);
  check(Number(tx.rows[0].rows) === EVENTS && Number(tx.rows[0].distinct_txids) === EVENTS,
    `state._txids: ${EVENTS} txids, each once (none recorded twice)`, JSON.stringify(tx.rows[0]));
  const sample = [0, 1, Math.floor(EVENTS / 2), EVENTS - 1].map((j) => `${STREAM}-${j}`);
  const st = await admin.query('SELECT state.txid_status(t) AS s FROM unnest($1::text[]) t', [sample]);
  check(st.rows.every((r) => r.s !== 'unknown'), 'sampled txids are committed', st.rows.map((r) => r.s).join(','));
  check((await sourceOffset()) === tail, 'the stream\'s source offset is the remote tail');

  // lag reporting
  const stats = log.map(statsOf).filter(Boolean);
  const behind = stats.filter((s) => s.eventsBehind > 0);
  const lastStats = statsOf(last.lines.filter((l) => l.startsWith('{')).pop() || '');
  check(behind.length > 0, 'the sink reported lag (events behind > 0) while behind',
    `${stats.length} stats lines`);
  check(lastStats && lastStats.eventsBehind === 0 && lastStats.behind === 0 && lastStats.offset === tail,
    'its last line says 0 behind, at the tail', JSON.stringify(lastStats));
  check(stats.every((s) => s.skippedEvents === 0), 'no run was handed a batch it had already applied');
  const applied = runs.map((r) => {
    const s = r.lines.map(statsOf).filter(Boolean).pop();
    return s ? `${s.events}${s.catchUpMs !== null ? ` (caught up in ${s.catchUpMs} ms)` : ''}` : '-';
  });
  note(`runs: ${runs.length}, events each applied (as its last lag line says): ${applied.join(', ')}`
    + `; max behind ${Math.max(0, ...behind.map((s) => s.eventsBehind))} events; ${entities} live entities`);
  note(`appended, followed and caught up in ${catchUpSecs.toFixed(1)} s; ${((Date.now() - t0) / 1000).toFixed(1)} s in all`);

  await ds.close();
  await server.stop();
  for (const type of ['user', 'message']) {
    await admin.query('SELECT state.drop_collection($1, $2, drop_table => true)', [`${STREAM}_${type}`, STREAM]);
  }
  for (const tbl of ['state.log', 'state._txids', 'state._expiry']) {
    await admin.query(`DELETE FROM ${tbl} WHERE stream_id = $1`, [sid]);
  }
  await admin.query('DELETE FROM state._streams WHERE id = $1', [sid]);
  await admin.end();
}

const { isDeepStrictEqual } = require('util');

main().then(() => {
  console.log(summary());
  process.exit(counts.failed === 0 && counts.passed > 0 ? 0 : 1);
}, (err) => {
  check(false, 'the test ran to its end', err && err.stack);
  console.log(summary());
  process.exit(1);
});
