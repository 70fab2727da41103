// test/t/gateway_streamdb.js -- the official Durable Streams clients in Node
// (@durable-streams/state's StreamDB, @durable-streams/client's stream(),
// from test/browser's npm package) follow durable_state streams through the
// HTTP gateway (clients/gateway/server.mjs) when things go wrong:
//
//   - the gateway is stopped and started again on the same port in the
//     middle of 1,000 events written with SQL (12 batches of them while it
//     is down), once killed (SIGKILL), once stopped (SIGTERM): readers
//     resume from their offsets, every event reaches each exactly once and
//     in order (the offsets they saw equal state.changes()), the last txid
//     confirms, and each ends equal to state.get_type().  Killed: a
//     long-poll StreamDB, and stream() readers (SSE, long-poll) that start
//     again from their last offset when their stream fails: the client
//     (0.2.6) gives up on an SSE connection cut mid-body, reconnecting only
//     after a clean end, so a StreamDB on SSE stops there.  Stopped: a
//     StreamDB on long-poll and one on SSE, resuming by themselves;
//   - a reader whose saved offset was pruned (state.set_retention,
//     state._maintain) gets 410 Gone, resyncs from offset -1 (the gateway
//     serves state.snapshot()) and, reading on from the snapshot's offset,
//     ends equal to get_type; a StreamDB started on the pruned stream too.
//
// Prints `N passed, M failed`.
'use strict';

const path = require('node:path');
const { check, note, summary, counts } = require('../node/tap.js');
const { rng } = require('../node/prng.js');
const H = require('../browser/helpers.js');

const BROWSER = path.join(H.ROOT, 'test/browser');
const need = (m) => require(require.resolve(m, { paths: [BROWSER] }));
const DB = 'ds_gateway_sdb_t';
const TYPES = ['item', 'note'];
const SEED = Number(process.env.DS_SEED || Date.now() % 100000);

let gw = null;

const anyObject = { '~standard': { version: 1, vendor: 'durable_state-test', validate: (value) => ({ value }) } };
const ADDED = ['_seq', '$synced', '$origin', '$key', '$collectionId', '$hasPendingWrites'];

// A StreamDB over `url` that notes the offset of every change event it gets.
async function follower(url, live) {
    const { createStreamDB, createStateSchema } = need('@durable-streams/state/db');
    const def = {};
    for (const t of TYPES) def[t] = { schema: anyObject, type: t, primaryKey: 'id' };
    const seen = [];
    const db = createStreamDB({
        streamOptions: { url, contentType: 'application/json', warnOnHttp: false },
        live,
        state: createStateSchema(def),
        onEvent: (ev) => seen.push(ev.headers.offset),
    });
    await db.preload();
    return { db, seen, live };
}

function collections(db) {
    const out = {};
    for (const t of TYPES) {
        out[t] = H.canonRows([...db.collections[t].entries()].map(([k, v]) => {
            const x = { ...v };
            for (const f of ADDED) delete x[f];
            return [k, x];
        }));
    }
    return out;
}

async function createCollections(db, stream) {
    for (const t of TYPES) {
        await db.query('SELECT state.create_collection($1, type => $2, stream => $3)', [`${t}_${stream}`, t, stream]);
    }
}

// The offsets of the stream's change events, from the start.
async function logOffsets(db, stream) {
    const r = await db.query(`SELECT "offset" FROM state.changes($1, '-1', 1000000)
                               WHERE event->'headers'->>'control' IS NULL`, [stream]);
    return r.rows.map((x) => x.offset);
}

// A reader of the client's stream() API that, when its stream fails (the
// client gives up on an SSE connection cut by a killed server), starts again
// from the offset of the last batch it took: resuming by offset, as an
// application does.  Notes each change event's offset; folds them into a
// MaterializedState.
function resumingReader(url, live) {
    const { stream: read } = need('@durable-streams/client');
    const { MaterializedState, isChangeEvent } = need('@durable-streams/state');
    const r = { live: `${live} (stream(), resuming by offset)`, seen: [], state: new MaterializedState(), txids: new Set(),
        offset: '-1', restarts: 0, stopped: false, res: null };
    r.done = (async () => {
        while (!r.stopped) {
            try {
                r.res = await read({ url, offset: r.offset, live, json: true, warnOnHttp: false });
                const closed = r.res.closed;
                r.res.subscribeJson((batch) => {
                    for (const ev of batch.items) {
                        if (!isChangeEvent(ev)) continue;
                        r.seen.push(ev.headers.offset);
                        r.state.apply(ev);
                        if (ev.headers.txid) r.txids.add(ev.headers.txid);
                    }
                    r.offset = batch.offset;
                });
                await closed;
            } catch {
                if (r.stopped) break;
                r.restarts++;
                await H.sleep(200);
            }
        }
    })();
    r.awaitTxId = async (txid, ms) => {
        const until = Date.now() + ms;
        while (!r.txids.has(txid)) {
            if (Date.now() > until) throw new Error(`Timeout waiting for txid: ${txid}`);
            await H.sleep(10);
        }
    };
    r.collections = () => {
        const out = {};
        for (const t of TYPES) out[t] = H.canonRows([...r.state.getType(t)]);
        return out;
    };
    r.close = () => { r.stopped = true; r.res?.cancel(); };
    return r;
}

// StreamDB as a reader of restartMidStream.
async function streamDbReader(url, live) {
    const f = await follower(url, live);
    return {
        live: `${live} (StreamDB)`, seen: f.seen, awaitTxId: (x, ms) => f.db.utils.awaitTxId(x, ms),
        collections: () => collections(f.db),
        close: () => f.db.close(),
    };
}

// 1,000 events in 40 SQL batches on a stream of its own; the gateway is
// stopped with `signal` after 12 batches and started again on the same port
// after 12 more, written while it was down.  The readers (made by
// `makeReaders(url)`) must end with every event once, in order.
async function restartMidStream(db, stream, signal, makeReaders) {
    await createCollections(db, stream);
    const model = new Map(TYPES.map((t) => [t, new Map()]));
    const rnd = rng(SEED + stream.length);
    await H.sqlApply(db, stream, H.randomEvents(rnd, model, 100));
    if (!gw) gw = await H.startGateway(DB, 0, { LONG_POLL_TIMEOUT_MS: '3000' });
    const port = gw.port;
    const url = `${gw.url}/v1/state/${stream}`;
    const readers = await makeReaders(url);
    const endTx = `${stream}-end-${SEED}`;
    let stoppedAt = null;
    for (let b = 0; b < 40; b++) {
        if (b === 12) {
            await H.stopGateway(gw, signal);
            stoppedAt = (await db.query('SELECT state.tail($1) AS t', [stream])).rows[0].t;
            note(`${stream}: gateway stopped (${signal}) at offset ${stoppedAt}; the readers had ${readers.map((r) => r.seen.length).join(', ')} events`);
        }
        if (b === 24) {
            gw = await H.startGateway(DB, port, { LONG_POLL_TIMEOUT_MS: '3000' });
            note(`${stream}: gateway started again at ${gw.url}, 12 batches were written while it was down`);
        }
        await H.sqlApply(db, stream, H.randomEvents(rnd, model, 25), b === 39 ? endTx : undefined);
        await H.sleep(b >= 12 && b < 24 ? 100 : 20);
    }
    check(gw.port === port, `${stream}: the gateway came back on the same port (${port})`);
    const want = await H.getTypes(db, stream, TYPES);
    const log = await logOffsets(db, stream);
    for (const r of readers) {
        const t0 = Date.now();
        let ok = true, err = '';
        await r.awaitTxId(endTx, 30000).catch((e) => { ok = false; err = e.message; });
        check(ok, `${stream} ${signal}, ${r.live}: after the restart the last txid confirms (${Date.now() - t0} ms)`, err);
        const before = r.seen.filter((o) => o <= stoppedAt).length;
        check(before > 100, `${stream} ${signal}, ${r.live}: it was following when the gateway stopped (${before} events read)`);
        const dup = r.seen.length - new Set(r.seen).size;
        const missing = log.filter((o) => !r.seen.includes(o)).length;
        check(JSON.stringify(r.seen) === JSON.stringify(log),
            `${stream} ${signal}, ${r.live}: every event exactly once, in order (${r.seen.length} of ${log.length}; ${missing} missing, ${dup} repeated)`);
        const got = r.collections();
        check(JSON.stringify(got) === JSON.stringify(want), `${stream} ${signal}, ${r.live}: equals state.get_type`,
            H.firstDifference(got, want));
        if (r.restarts !== undefined) note(`${stream}: ${r.live} started its stream again ${r.restarts} times`);
        r.close();
    }
}

async function prunedReader(db) {
    const { stream: read } = need('@durable-streams/client');
    const { MaterializedState, isChangeEvent, isControlEvent } = need('@durable-streams/state');
    const stream = 'pr';
    await createCollections(db, stream);
    const model = new Map(TYPES.map((t) => [t, new Map()]));
    const rnd = rng(SEED + 7);
    for (let i = 0; i < 6; i++) await H.sqlApply(db, stream, H.randomEvents(rnd, model, 50));
    const url = `${gw.url}/v1/state/${stream}`;

    // a reader reads to the tail and stops, keeping its state and offset
    let state = new MaterializedState();
    let res = await read({ url, offset: '-1', live: false, json: true });
    for (const ev of await res.json()) if (isChangeEvent(ev)) state.apply(ev);
    const saved = res.offset;
    note(`the reader stopped at ${saved}`);

    // meanwhile: more events, then the log is cut to the last 20
    for (let i = 0; i < 6; i++) await H.sqlApply(db, stream, H.randomEvents(rnd, model, 50));
    await db.query("SELECT state.set_retention($1, max_events => 20)", [stream]);
    await db.query('SELECT state._maintain(86400)');
    const from = (await db.query('SELECT retained_from FROM state._streams WHERE name = $1', [stream])).rows[0]?.retained_from;
    check(from !== undefined && from !== null && BigInt(from) > BigInt(saved), `the log was pruned past the reader's offset (retained from ${from})`);

    // it comes back with its offset: 410
    let status = null;
    try {
        res = await read({ url, offset: saved, live: false, json: true });
        await res.json();
    } catch (e) {
        status = e.status;
    }
    check(status === 410, `the reader resuming at its pruned offset gets 410 Gone (${status})`);

    // resync from offset -1: the snapshot, then on from its offset
    state = new MaterializedState();
    res = await read({ url, offset: '-1', live: false, json: true });
    const items = await res.json();
    const controls = items.filter(isControlEvent).map((e) => e.headers.control);
    check(controls[0] === 'snapshot-start' && controls.at(-1) === 'snapshot-end',
        `offset -1 on the pruned stream: the snapshot (${items.length - controls.length} entities)`, controls.join(','));
    for (const ev of items) if (isChangeEvent(ev)) state.apply(ev);
    const materialized = () => {
        const out = {};
        for (const t of TYPES) out[t] = H.canonRows([...state.getType(t)]);
        return out;
    };
    let want = await H.getTypes(db, stream, TYPES);
    let got = materialized();
    check(JSON.stringify(got) === JSON.stringify(want), 'the resynced state equals state.get_type', H.firstDifference(got, want));
    const snapAt = res.offset;
    await H.sqlApply(db, stream, H.randomEvents(rnd, model, 60));
    await H.sqlApply(db, stream, H.randomEvents(rnd, model, 60));
    res = await read({ url, offset: snapAt, live: false, json: true });
    const after = await res.json();
    const offsets = after.map((e) => e.headers.offset);
    const expect = (await db.query(`SELECT "offset" FROM state.changes($1, $2, 100000)`, [stream, snapAt])).rows.map((x) => x.offset);
    check(JSON.stringify(offsets) === JSON.stringify(expect) && offsets.length === 120,
        `reading on from the snapshot's offset (${snapAt}): the 120 later events, once each`, `${offsets.length} vs ${expect.length}`);
    for (const ev of after) if (isChangeEvent(ev)) state.apply(ev);
    want = await H.getTypes(db, stream, TYPES);
    got = materialized();
    check(JSON.stringify(got) === JSON.stringify(want), 'and then equals state.get_type again', H.firstDifference(got, want));

    // StreamDB on the pruned stream: the snapshot, then live events
    const f = await follower(url, 'long-poll');
    got = collections(f.db);
    check(JSON.stringify(got) === JSON.stringify(want), 'a StreamDB started on the pruned stream loads the snapshot: equals get_type',
        H.firstDifference(got, want));
    await H.sqlApply(db, stream, H.randomEvents(rnd, model, 40), `pr-end-${SEED}`);
    let ok = true;
    await f.db.utils.awaitTxId(`pr-end-${SEED}`, 10000).catch(() => { ok = false; });
    want = await H.getTypes(db, stream, TYPES);
    got = collections(f.db);
    check(ok && JSON.stringify(got) === JSON.stringify(want), 'it follows on: a txid after the snapshot confirms, equal to get_type',
        H.firstDifference(got, want));
    f.db.close();
}

async function main() {
    note(`seed ${SEED} (DS_SEED=${SEED} repeats this run)`);
    const db = await H.freshDatabase(DB);
    // killed: the client's SSE gives up on a cut connection (it reconnects
    // only after a clean end), so the SSE reader resumes by offset itself
    await restartMidStream(db, 'killed', 'SIGKILL', async (url) => [
        await streamDbReader(url, 'long-poll'), resumingReader(url, 'sse'), resumingReader(url, 'long-poll')]);
    // stopped (SIGTERM ends SSE responses cleanly): StreamDB resumes by itself
    await restartMidStream(db, 'stopped', 'SIGTERM', async (url) => [
        await streamDbReader(url, 'long-poll'), await streamDbReader(url, 'sse')]);
    await prunedReader(db);
    await db.end();
}

main().catch((err) => {
    check(false, 'the test ran to the end', err.stack);
}).finally(async () => {
    await H.stopGateway(gw).catch(() => {});
    await H.dropDatabase(DB).catch(() => {});
    console.log(summary());
    process.exit(counts.failed > 0 ? 1 : 0);
});
