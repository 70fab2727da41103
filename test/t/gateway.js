// test/t/gateway.js -- the HTTP gateway (clients/gateway/server.mjs) against
// the test cluster: real HTTP requests, status codes, headers and bodies.
//
// It makes its own database (ds_gateway_t), starts the gateway as a child
// process on a free port (LONG_POLL_TIMEOUT_MS=1500, MAX_BODY_BYTES=65536)
// and checks /v1/state/<stream> (GET, ETag/304, HEAD, long-poll woken by a
// SQL commit, and by one made before its LISTEN, SSE, POST with idempotent
// producers committed with the events, error statuses with the SQLSTATE,
// 410 and the snapshot of a pruned stream, one LISTEN connection for many
// readers, the listener's reconnect) and /v1/stream/<path> (create, append,
// read, long-poll, data in Postgres tables, a restart that keeps the data,
// delete).  Prints
// `N passed, M failed`.
'use strict';

const path = require('node:path');
const { check, note, summary, counts } = require(path.join(__dirname, '../node/tap.js'));

const DB = 'ds_gateway_t';
const gatewayUtil = require(path.join(__dirname, '../node/gateway_util.js'));
const { sleep, sseRead } = gatewayUtil;

let gw = null;
let base = null;

const startGateway = () => gatewayUtil.startGateway(
    { PGDATABASE: DB, LONG_POLL_TIMEOUT_MS: '1500', MAX_BODY_BYTES: '65536' });

async function stopGateway() {
    if (!gw) return;
    await gw.stop();
    gw = null;
}

const get = (p, opts) => fetch(base + p, opts);

function post(p, body, headers = {}) {
    return fetch(base + p, {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
    });
}

const ev = (key, value, op = 'insert', extra = {}) => ({ type: 'm', key, value, headers: { operation: op, ...extra } });

async function main() {
    const db = await gatewayUtil.freshDatabase(DB);
    await db.query("SELECT state.create_collection('m', stream => 'gw')");
    await db.query("SELECT state.create_collection('p', stream => 'pruned')");
    const first = (await db.query(`SELECT last_offset FROM state.apply($1::jsonb, 'gw')`,
        [JSON.stringify([ev('a', { n: 1 }, 'insert', { txid: 't1' }), ev('b', { n: 2 })])])).rows[0].last_offset;

    gw = await startGateway();
    base = gw.url;
    note(`gateway at ${base}`);

    // ---- GET catch-up, ETag/304, HEAD, offset=now, errors
    let r = await get('/v1/state/gw?offset=-1');
    let body = await r.json();
    check(r.status === 200 && r.headers.get('content-type') === 'application/json', 'GET offset=-1: 200 application/json');
    check(body.length === 2 && body[0].key === 'a' && body[0].headers.offset === '00000000000000000001'
        && body[0].headers.txid === 't1', 'GET offset=-1: the events of state.changes with their offsets', JSON.stringify(body));
    check(r.headers.get('stream-next-offset') === first && r.headers.get('stream-up-to-date') === 'true',
        'GET: Stream-Next-Offset is the last offset, Stream-Up-To-Date', [...r.headers].join(' '));
    check(/public/.test(r.headers.get('cache-control') || '') && r.headers.get('access-control-allow-origin') === '*'
        && r.headers.get('x-content-type-options') === 'nosniff', 'GET: caching, CORS and nosniff headers');
    const etag = r.headers.get('etag');
    r = await get('/v1/state/gw?offset=-1', { headers: { 'if-none-match': etag } });
    check(etag && r.status === 304, 'GET with If-None-Match of the ETag: 304', `${etag} ${r.status}`);
    r = await get('/v1/state/gw?offset=00000000000000000001');
    body = await r.json();
    check(r.status === 200 && body.length === 1 && body[0].key === 'b', 'GET offset=<offset>: the events after it');
    r = await get('/v1/state/gw', { method: 'HEAD' });
    const tail = (await db.query("SELECT state.tail('gw') AS t")).rows[0].t;
    check(r.status === 200 && r.headers.get('stream-next-offset') === tail && r.headers.get('cache-control') === 'no-store',
        'HEAD: Stream-Next-Offset is state.tail(), no-store');
    r = await get('/v1/state/gw?offset=now');
    check(r.status === 200 && (await r.text()) === '[]' && r.headers.get('stream-next-offset') === tail,
        'GET offset=now: [] and the tail');
    r = await get('/v1/state/nosuch?offset=-1');
    body = await r.json();
    check(r.status === 404 && body.error.sqlstate === '42704', 'GET of an unknown stream: 404 with SQLSTATE 42704');
    r = await get('/v1/state/gw?offset=abc');
    check(r.status === 400, 'GET with a malformed offset: 400');
    r = await get('/v1/state/gw?live=long-poll');
    check(r.status === 400, 'long-poll without an offset: 400');

    // ---- long-poll: woken by a SQL commit, 204 on timeout
    let t0 = Date.now();
    let lp = get(`/v1/state/gw?offset=${tail}&live=long-poll&cursor=1`);
    await sleep(300);
    await db.query(`SELECT state.apply($1::jsonb, 'gw')`, [JSON.stringify([ev('c', { n: 3 }, 'insert', { txid: 't3' })])]);
    r = await lp;
    body = await r.json();
    const waited = Date.now() - t0;
    check(r.status === 200 && body.length === 1 && body[0].key === 'c' && waited >= 250 && waited < 1400,
        `long-poll at the tail: woken by a SQL commit (${waited} ms)`, `${r.status} ${JSON.stringify(body)}`);
    check(/^\d+$/.test(r.headers.get('stream-cursor') || '') && r.headers.get('stream-up-to-date') === 'true',
        'long-poll: Stream-Cursor and Stream-Up-To-Date');
    const tail2 = r.headers.get('stream-next-offset');
    t0 = Date.now();
    r = await get(`/v1/state/gw?offset=${tail2}&live=long-poll`);
    check(r.status === 204 && r.headers.get('stream-next-offset') === tail2 && Date.now() - t0 >= 1400,
        'long-poll with nothing new: 204 after the timeout, same offset');

    // ---- long-poll on a stream nobody waited on yet, after a commit made
    // since a catch-up read at the same offset: the commit sent no
    // notification the gateway could see (no LISTEN yet), so the finished
    // catch-up read must not answer the long-poll (it would say "nothing
    // new" until the next commit)
    await db.query("SELECT state.create_collection('q', stream => 'quiet')");
    await db.query(`SELECT state.apply($1::jsonb, 'quiet')`, [JSON.stringify([{ ...ev('q1', { n: 1 }), type: 'q' }])]);
    r = await get('/v1/state/quiet?offset=-1');
    const qTail = r.headers.get('stream-next-offset');
    await r.arrayBuffer();
    r = await get(`/v1/state/quiet?offset=${qTail}`);
    body = await r.json();
    check(r.status === 200 && body.length === 0 && r.headers.get('stream-up-to-date') === 'true',
        'catch-up read at the tail of a stream nobody waits on: [] up to date');
    await db.query(`SELECT state.apply($1::jsonb, 'quiet')`, [JSON.stringify([{ ...ev('q2', { n: 2 }), type: 'q' }])]);
    t0 = Date.now();
    r = await get(`/v1/state/quiet?offset=${qTail}&live=long-poll`);
    body = r.status === 200 ? await r.json() : [];
    check(r.status === 200 && body.length === 1 && body[0].key === 'q2' && Date.now() - t0 < 1000,
        `long-poll after a commit made before its LISTEN: the commit at once, not the earlier read's [] (${r.status}, ${Date.now() - t0} ms)`,
        JSON.stringify(body));

    // ---- many readers, one LISTEN connection, all woken by one commit
    const readers = [];
    for (let i = 0; i < 50; i++) readers.push(get(`/v1/state/gw?offset=${tail2}&live=long-poll`));
    await sleep(400);
    const listeners = (await db.query(`SELECT count(*)::int AS n FROM pg_stat_activity
                                        WHERE datname = $1 AND application_name = 'ds_gateway_listen'`, [DB])).rows[0].n;
    check(listeners === 1, `50 long-poll readers share one LISTEN connection (${listeners})`);
    const h0 = await (await get('/health')).json();
    await db.query(`SELECT state.apply($1::jsonb, 'gw')`, [JSON.stringify([ev('d', { n: 4 })])]);
    const rs = await Promise.all(readers);
    const bodies = await Promise.all(rs.map((x) => (x.status === 200 ? x.json() : [])));
    check(bodies.every((b) => b.length === 1 && b[0].key === 'd'), '50 long-poll readers: each gets the commit');
    const h1 = await (await get('/health')).json();
    note(`queries for 50 readers woken by one commit: ${h1.queries - h0.queries}`);
    check(h1.queries - h0.queries <= 10, `identical reads share queries (${h1.queries - h0.queries} for 50 readers)`);

    // ---- SSE: catch-up, control event, then live data from a SQL commit
    const sres = await get('/v1/state/gw?offset=-1&live=sse');
    check(sres.status === 200 && sres.headers.get('content-type') === 'text/event-stream', 'SSE: 200 text/event-stream');
    const sseP = sseRead(sres, (evs) => evs.filter((e) => e.type === 'data').length >= 2);
    await sleep(300);
    await db.query(`SELECT state.apply($1::jsonb, 'gw')`, [JSON.stringify([ev('e', { n: 5 })])]);
    const sse = await sseP;
    const datas = sse.filter((e) => e.type === 'data').map((e) => JSON.parse(e.data));
    const ctl = sse.filter((e) => e.type === 'control').map((e) => JSON.parse(e.data));
    check(datas.length >= 2 && datas[0].length === 4 && datas[1][0].key === 'e',
        'SSE: catch-up data event, then the live commit as a data event', JSON.stringify(sse));
    check(ctl.length >= 1 && ctl[0].streamNextOffset === tail2.replace(/\d+$/, (x) => String(Number(x) + 1).padStart(20, '0'))
        && ctl[0].upToDate === true && /^\d+$/.test(ctl[0].streamCursor), 'SSE: control event with streamNextOffset, cursor, upToDate',
    JSON.stringify(ctl));

    // ---- 20 SSE readers at the tail: one commit reaches each, in few queries
    const tailS = (await db.query("SELECT state.tail('gw') AS t")).rows[0].t;
    const sseRes = await Promise.all(Array.from({ length: 20 }, () => get(`/v1/state/gw?offset=${tailS}&live=sse`)));
    const sseReads = sseRes.map((x) => sseRead(x, (evs) => evs.some((e) => e.type === 'data')));
    await sleep(400);
    const q0 = (await (await get('/health')).json()).queries;
    await db.query(`SELECT state.apply($1::jsonb, 'gw')`, [JSON.stringify([ev('e2', { n: 55 })])]);
    const sseAll = await Promise.all(sseReads);
    const q1 = (await (await get('/health')).json()).queries;
    check(sseAll.every((evs) => evs.some((e) => e.type === 'data' && JSON.parse(e.data)[0].key === 'e2')),
        '20 SSE readers: each gets the commit as a data event');
    note(`queries for 20 SSE readers woken by one commit: ${q1 - q0}`);
    check(q1 - q0 <= 5, `SSE readers woken together share reads (${q1 - q0} queries)`);

    // ---- POST: events through state.apply
    r = await post('/v1/state/gw', [ev('f', { n: 6 }, 'insert', { txid: 'http-1' })]);
    body = await r.json();
    const fv = (await db.query("SELECT state.get('m', 'f', 'gw') AS v")).rows[0].v;
    check(r.status === 200 && body.applied === 1 && r.headers.get('stream-next-offset') === body.last_offset && fv.n === 6,
        'POST: applied through state.apply, Stream-Next-Offset', JSON.stringify(body));
    check((await db.query("SELECT state.txid_status('http-1') AS s")).rows[0].s !== 'unknown', 'POST: its txid is committed');
    r = await post('/v1/state/gw', '[{"type":');
    check(r.status === 400, 'POST malformed JSON: 400');
    r = await post('/v1/state/gw', [{ key: 'x', value: {}, headers: { operation: 'insert' } }]);
    body = await r.json();
    check(r.status === 400 && /^22/.test(body.error.sqlstate) && body.error.message, 'POST malformed event: 400 with SQLSTATE and message', JSON.stringify(body));
    r = await post('/v1/state/gw', [ev('f', { n: 7 })]);
    body = await r.json();
    check(r.status === 409 && body.error.sqlstate === '23505', 'POST conflicting insert: 409 with SQLSTATE 23505');
    r = await post('/v1/state/gw', [ev('big', { s: 'x'.repeat(70000) })]);
    check(r.status === 413, 'POST over MAX_BODY_BYTES: 413');
    r = await post('/v1/state/gw', [ev('x', {})], { 'content-type': 'text/plain' });
    check(r.status === 409 || r.status === 400, 'POST with a non-JSON content type: refused');
    r = await post('/v1/state/nosuch', [ev('x', {})]);
    check(r.status === 404, 'POST to an unknown stream: 404');

    // ---- idempotent producers, committed with the events
    const P = (epoch, seq) => ({ 'producer-id': 'w1', 'producer-epoch': String(epoch), 'producer-seq': String(seq) });
    const count = async () => (await db.query("SELECT count(*)::int AS n FROM state.changes('gw', '-1', 100000)")).rows[0].n;
    const n0 = await count();
    r = await post('/v1/state/gw', [ev('g0', {})], P(0, 0));
    check(r.status === 200 && r.headers.get('producer-seq') === '0' && r.headers.get('producer-epoch') === '0', 'producer seq 0: 200');
    r = await post('/v1/state/gw', [ev('g0', {})], P(0, 0));
    check(r.status === 204 && r.headers.get('producer-seq') === '0', 'producer retry of seq 0: 204 duplicate');
    check(await count() === n0 + 1, 'the duplicate was not applied again');
    r = await post('/v1/state/gw', [ev('g2', {})], P(0, 2));
    check(r.status === 409 && r.headers.get('producer-expected-seq') === '1' && r.headers.get('producer-received-seq') === '2',
        'producer sequence gap: 409 with Producer-Expected-Seq');
    r = await post('/v1/state/gw', [ev('g0', {})], P(0, 1));
    check(r.status === 409, 'producer seq 1 with a failing batch: 409');
    r = await post('/v1/state/gw', [ev('g1', {})], P(0, 1));
    check(r.status === 200, 'producer seq 1 again after the failed batch: 200 (the failure did not advance it)');
    r = await post('/v1/state/gw', [ev('g9', {})], P(1, 0));
    check(r.status === 200, 'producer new epoch at seq 0: 200');
    r = await post('/v1/state/gw', [ev('g8', {})], P(0, 2));
    check(r.status === 403 && r.headers.get('producer-epoch') === '1', 'producer stale epoch: 403 with the current epoch');
    r = await post('/v1/state/gw', [ev('g7', {})], { 'producer-id': 'w1' });
    check(r.status === 400, 'incomplete producer headers: 400');
    const prow = (await db.query(`SELECT epoch, last_seq FROM ds_gateway.producers WHERE kind = 'state' AND producer_id = 'w1'`)).rows[0];
    check(prow && Number(prow.epoch) === 1 && Number(prow.last_seq) === 0, 'producer state is in ds_gateway.producers');
    check(await count() === n0 + 3, 'three producer batches applied, once each');

    // ---- retention: 410 for a pruned offset, the snapshot for offset=-1
    for (let i = 0; i < 5; i++) {
        await db.query(`SELECT state.apply($1::jsonb, 'pruned')`, [JSON.stringify([{ type: 'p', key: `k${i}`, value: { i }, headers: { operation: 'upsert' } }])]);
    }
    await db.query("SELECT state.set_retention('pruned', max_events => 1)");
    await db.query('SELECT state._maintain(86400)');
    const retained = (await db.query("SELECT retained_from FROM state._streams WHERE name = 'pruned'")).rows[0];
    note(`pruned stream retained_from=${retained?.retained_from}`);
    r = await get('/v1/state/pruned?offset=00000000000000000001');
    body = await r.json();
    check(r.status === 410 && body.error.sqlstate === '55000', 'GET of an offset older than the retention: 410 Gone', JSON.stringify(body));
    r = await get('/v1/state/pruned?offset=-1');
    body = await r.json();
    check(r.status === 200 && body[0].headers.control === 'snapshot-start' && body.at(-1).headers.control === 'snapshot-end'
        && body.filter((e) => e.type === 'p').length === 5, 'GET offset=-1 of a pruned stream: state.snapshot()', JSON.stringify(body));
    check(r.headers.get('stream-next-offset') === body.at(-1).headers.offset, 'snapshot: Stream-Next-Offset is its snapshot-end offset');
    r = await get(`/v1/state/pruned?offset=${r.headers.get('stream-next-offset')}`);
    check(r.status === 200 && (await r.json()).length === 0 && r.headers.get('stream-up-to-date') === 'true', 'after the snapshot: up to date');

    // ---- the LISTEN connection is killed: readers are still woken
    await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'ds_gateway_listen'`, [DB]);
    await sleep(1200);
    const tail3 = (await db.query("SELECT state.tail('gw') AS t")).rows[0].t;
    lp = get(`/v1/state/gw?offset=${tail3}&live=long-poll`);
    await sleep(300);
    await db.query(`SELECT state.apply($1::jsonb, 'gw')`, [JSON.stringify([ev('h', {})])]);
    r = await lp;
    check(r.status === 200 && (await r.json())[0]?.key === 'h', 'after the LISTEN connection was killed: long-poll still woken');

    // ---- generic streams in Postgres tables
    r = await fetch(`${base}/v1/stream/t/one`, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
    check(r.status === 201 && r.headers.get('stream-next-offset') === '0000000000000000_0000000000000000', 'PUT /v1/stream: 201, offset 0_0');
    r = await fetch(`${base}/v1/stream/t/one`, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
    check(r.status === 200, 'PUT again with the same config: 200');
    r = await fetch(`${base}/v1/stream/t/one`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello ' });
    const o1 = r.headers.get('stream-next-offset');
    check(r.status === 204 && /^\d{16}_\d{16}$/.test(o1), 'POST /v1/stream: 204 with a %016d_%016d offset', o1);
    lp = get(`/v1/stream/t/one?offset=${o1}&live=long-poll`);
    await sleep(300);
    await fetch(`${base}/v1/stream/t/one`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'world' });
    r = await lp;
    check(r.status === 200 && (await r.text()) === 'world', 'generic long-poll: woken by an append');
    const stored = (await db.query(`SELECT string_agg(convert_from(data, 'UTF8'), '' ORDER BY "offset") AS s
                                      FROM ds_gateway.messages WHERE path = 't/one'`)).rows[0].s;
    check(stored === 'hello world', 'generic stream data is in ds_gateway.messages');
    r = await fetch(`${base}/v1/stream/t/json`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '[{"a":1},{"a":2}]' });
    r = await get('/v1/stream/t/json?offset=-1');
    check(r.status === 200 && JSON.stringify(await r.json()) === '[{"a":1},{"a":2}]', 'JSON stream: an array is flattened into messages');

    // ---- restart: the data is in Postgres, not in the process
    await stopGateway();
    gw = await startGateway();
    base = gw.url;
    r = await get('/v1/stream/t/one?offset=-1');
    check(r.status === 200 && (await r.text()) === 'hello world', 'after a gateway restart: the generic stream is intact');
    r = await get(`/v1/state/gw?offset=${tail3}`);
    check(r.status === 200 && (await r.json())[0]?.key === 'h', 'after a gateway restart: the state stream reads on');
    r = await fetch(`${base}/v1/stream/t/one`, { method: 'DELETE' });
    check(r.status === 204, 'DELETE /v1/stream: 204');
    r = await get('/v1/stream/t/one?offset=-1');
    check(r.status === 404, 'GET after DELETE: 404');

    await stopGateway();
    await db.end();
    await gatewayUtil.dropDatabase(DB);
}

main().catch((err) => {
    check(false, 'gateway test ran to the end', err.stack);
}).finally(async () => {
    await stopGateway().catch(() => {});
    console.log(summary());
    process.exit(counts.failed > 0 ? 1 : 0);
});
