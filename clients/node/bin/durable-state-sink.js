#!/usr/bin/env node
'use strict';
/*
 * durable-state-sink <url>: keeps a remote Durable Stream of State Protocol
 * events applied to a durable_state stream in Postgres, exactly once (see
 * ../sink.js).  Postgres from --database, DATABASE_URL or the PG* variables.
 * Every --lag-interval ms it prints one line to stderr:
 *   durable-state-sink: offset=<applied> remote=<tail> behind=<n> <unit> (~<n> events) events=<n> (<n>/s) batches=<n> resyncs=<n> retries=<n>
 * Exits 0 when stopped by SIGINT/SIGTERM, at the end of a catch-up
 * (--live false) or when the remote stream is closed; 1 on an error that
 * retrying cannot fix (an event Postgres refuses, a 404).
 */
const { sink } = require('../sink.js');

const USAGE = `usage: durable-state-sink <url> [options]
  --stream NAME          durable_state stream to apply to (default: default)
  --database URL         Postgres connection string (default: DATABASE_URL, else PG* variables)
  --live MODE            true (default: follow), sse, long-poll, or false (catch up, then exit)
  --header 'K: V'        an HTTP header for every request (repeatable)
  --lag-interval MS      how often to print the lag line (default 5000; 0: never)
  --max-batch-bytes N    a larger response is applied in parts, each committed alone (default 1048576)
  --max-batch-events N   events per part (default 10000)
  --json                 print the lag lines as JSON (the fields of stats())`;

function parseArgs(argv) {
  const o = { headers: {}, lagIntervalMs: 5000, live: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--stream': o.stream = val(); break;
      case '--database': o.connectionString = val(); break;
      case '--live': {
        const v = val();
        o.live = v === 'true' ? true : v === 'false' ? false : v;
        if (![true, false, 'sse', 'long-poll'].includes(o.live)) throw new Error(`--live: ${v}?`);
        break;
      }
      case '--header': {
        const h = val();
        const c = h.indexOf(':');
        if (c <= 0) throw new Error(`--header: "${h}" is not "Name: value"`);
        o.headers[h.slice(0, c).trim()] = h.slice(c + 1).trim();
        break;
      }
      case '--lag-interval': o.lagIntervalMs = Number(val()); break;
      case '--max-batch-bytes': o.maxBatchBytes = Number(val()); break;
      case '--max-batch-events': o.maxBatchEvents = Number(val()); break;
      case '--json': o.json = true; break;
      case '-h': case '--help': console.log(USAGE); process.exit(0); break;
      default:
        if (a.startsWith('-') || o.url) throw new Error(`unexpected argument ${a}`);
        o.url = a;
    }
  }
  if (!o.url) throw new Error('the stream url is missing');
  return o;
}

function lagLine(s) {
  const behind = s.behind === null ? '?' : `${s.behind} ${s.behindUnit ?? ''}`.trim();
  const ev = s.eventsBehind === null ? '' : ` (~${s.eventsBehind} events)`;
  return `durable-state-sink: offset=${s.offset} remote=${s.remoteOffset ?? '?'} behind=${behind}${ev}`
    + ` events=${s.events} (${s.eventsPerSecond}/s) batches=${s.batches} resyncs=${s.resyncs} retries=${s.retries}`;
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`durable-state-sink: ${err.message}\n${USAGE}`);
    process.exit(2);
  }
  const print = (s) => console.error(o.json ? JSON.stringify(s) : lagLine(s));
  const sk = sink({
    url: o.url, stream: o.stream, live: o.live, headers: o.headers,
    maxBatchBytes: o.maxBatchBytes, maxBatchEvents: o.maxBatchEvents,
    connectionString: o.connectionString ?? process.env.DATABASE_URL,
    lagIntervalMs: o.lagIntervalMs, onLag: o.lagIntervalMs > 0 ? print : undefined,
  });
  sk.on('retry', (err) => console.error(`durable-state-sink: retrying after: ${err.message}`));
  sk.on('resync', () => console.error('durable-state-sink: offset gone (410): resyncing from the start'));
  sk.on('caught-up', (s) => console.error(`durable-state-sink: caught up: ${lagLine(s)}`));
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => sk.close());
  try {
    await sk.done;
    await sk.close();
    print(sk.stats());
  } catch (err) {
    console.error(`durable-state-sink: ${err.message}${err.code ? ` (${err.code})` : ''}`);
    await sk.close().catch(() => {});
    process.exit(1);
  }
}

main();
