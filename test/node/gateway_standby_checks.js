// test/node/gateway_standby_checks.js -- the checks of
// test/t/gateway_standby.sh: a gateway whose reads go to a hot standby
// (READ_DATABASE_URL) and whose writes go to the primary (PG* variables).
//
// Environment: DS_GW_DB (database, on both), DS_STANDBY_HOST (the
// standby's socket directory), DS_STANDBY_PORT, and the primary's PG*
// variables.  Prints `ok - ...` lines and `N passed, M failed`.
'use strict';

const path = require('node:path');
const pg = require(path.join(__dirname, 'node_modules/pg'));
const { check, note, summary, counts } = require(path.join(__dirname, 'tap.js'));
const { sleep, startGateway, sseRead, ev } = require(path.join(__dirname, 'gateway_util.js'));

const DB = process.env.DS_GW_DB;
const SB = { host: process.env.DS_STANDBY_HOST, port: Number(process.env.DS_STANDBY_PORT), database: DB };
let gw = null;

async function main() {
    const prim = new pg.Client({ database: DB });
    await prim.connect();
    const sb = new pg.Client(SB);
    await sb.connect();
    // the database and the collection have reached the standby
    for (let i = 0; i < 100; i++) {
        const r = await sb.query("SELECT count(*)::int AS n FROM state.streams WHERE stream = 'sb'").catch(() => null);
        if (r?.rows[0].n === 1) break;
        await sleep(100);
    }
    const user = process.env.PGUSER || require('node:os').userInfo().username;
    const readUrl = `postgresql://${encodeURIComponent(user)}@localhost:${SB.port}/${DB}?host=${encodeURIComponent(SB.host)}`;
    gw = await startGateway({ PGDATABASE: DB, READ_DATABASE_URL: readUrl, LONG_POLL_TIMEOUT_MS: '3000' });
    const get = (p) => fetch(gw.url + p);
    const stats = async () => (await get('/v1/_gateway/stats')).json();
    const st = await stats();
    check(st.wakeup === 'wait', `READ_DATABASE_URL: readers are woken by waiting reads (${st.wakeup})`);

    // ---- a POST to the primary reaches a long-poll reader on the standby
    let r = await get('/v1/state/sb?offset=now');
    const tail = r.headers.get('stream-next-offset');
    check(r.status === 200 && /^\d{20}$/.test(tail || ''), 'GET offset=now from the standby', `${r.status} ${tail}`);
    let lp = get(`/v1/state/sb?offset=${tail}&live=long-poll`);
    await sleep(300);
    const waiting = (await sb.query(`SELECT count(*)::int AS n FROM pg_stat_activity
                                      WHERE application_name = 'ds_gateway_wait' AND state = 'active'`)).rows[0].n;
    check(waiting === 1, `the long-poll waits in a waiting read on the standby (${waiting} active there)`);
    const t0 = Date.now();
    r = await fetch(gw.url + '/v1/state/sb', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify([ev('m', 'a', { n: 1 }, 'insert', { txid: 'sb-1' })]),
    });
    const posted = await r.json();
    check(r.status === 200 && posted.applied === 1, 'POST through the gateway: applied on the primary', JSON.stringify(posted));
    r = await lp;
    let body = r.status === 200 ? await r.json() : [];
    note(`POST -> long-poll reader on the standby: ${Date.now() - t0} ms`);
    check(r.status === 200 && body.length === 1 && body[0].key === 'a' && body[0].headers.txid === 'sb-1'
        && r.headers.get('stream-next-offset') === posted.last_offset,
    'the long-poll reader served from the standby gets the POSTed event', `${r.status} ${JSON.stringify(body)}`);

    // ---- SSE from the standby: a SQL commit on the primary with a txid
    const sres = await get(`/v1/state/sb?offset=${posted.last_offset}&live=sse`);
    check(sres.status === 200 && sres.headers.get('content-type') === 'text/event-stream', 'SSE from the standby: 200');
    const sseP = sseRead(sres, (evs) => evs.some((e) => e.type === 'data'), 8000);
    await sleep(300);
    await prim.query(`SELECT state.apply($1::jsonb, 'sb')`, [JSON.stringify([ev('m', 'b', { n: 2 }, 'insert', { txid: 'sb-2' })])]);
    const sse = await sseP;
    const data = sse.filter((e) => e.type === 'data').flatMap((e) => JSON.parse(e.data));
    check(data.length === 1 && data[0].key === 'b' && data[0].headers.txid === 'sb-2',
        'the SSE reader served from the standby gets a SQL commit on the primary', JSON.stringify(sse));

    // ---- the reads are the standby's: with its replay paused, nothing comes
    let t = (await prim.query("SELECT state.tail('sb') AS t")).rows[0].t;
    await sb.query('SELECT pg_wal_replay_pause()');
    lp = get(`/v1/state/sb?offset=${t}&live=long-poll`);
    await sleep(200);
    await prim.query(`SELECT state.apply($1::jsonb, 'sb')`, [JSON.stringify([ev('m', 'c', { n: 3 })])]);
    const early = await Promise.race([lp.then(() => 'answered'), sleep(1000).then(() => 'waiting')]);
    check(early === 'waiting', 'replay paused on the standby: the long-poll is not answered', early);
    await sb.query('SELECT pg_wal_replay_resume()');
    r = await lp;
    body = r.status === 200 ? await r.json() : [];
    check(r.status === 200 && body[0]?.key === 'c', 'replay resumed: the long-poll gets the event', `${r.status} ${JSON.stringify(body)}`);

    // ---- 100 readers at one offset: one waiting read per commit
    t = (await prim.query("SELECT state.tail('sb') AS t")).rows[0].t;
    const s0 = await stats();
    const readers = Array.from({ length: 100 }, () => get(`/v1/state/sb?offset=${t}&live=long-poll`));
    await sleep(500);
    await prim.query(`SELECT state.apply($1::jsonb, 'sb')`, [JSON.stringify([ev('m', 'd', { n: 4 })])]);
    const rs = await Promise.all(readers);
    const bodies = await Promise.all(rs.map((x) => (x.status === 200 ? x.json() : [])));
    const s1 = await stats();
    check(bodies.every((b) => b.length === 1 && b[0].key === 'd'), '100 long-poll readers on the standby: each gets the commit');
    note(`100 readers, one commit: ${s1.waits - s0.waits} waiting reads, ${s1.statements - s0.statements} statements`);
    check(s1.waits - s0.waits <= 2 && s1.statements - s0.statements <= 4,
        `100 readers share one waiting read (${s1.waits - s0.waits} waits, ${s1.statements - s0.statements} statements)`);

    await gw.stop();
    gw = null;
    await prim.end();
    await sb.end();
}

main().catch((err) => {
    check(false, 'gateway standby checks ran to the end', err.stack);
}).finally(async () => {
    if (gw) await gw.stop().catch(() => {});
    console.log(summary());
    process.exit(counts.failed > 0 ? 1 : 0);
});
