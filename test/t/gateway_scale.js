// test/t/gateway_scale.js -- 1,000 concurrent long-poll readers of one
// stream in one gateway process, with each wake-up (LISTEN, the default,
// and waiting reads, GATEWAY_WAKEUP=wait).
//
// Each reader loops: GET ?offset=<its offset>&live=long-poll, takes the
// events, goes on from Stream-Next-Offset.  Once all 1,000 wait, COMMITS
// SQL commits of one event each are made one by one, each after every
// reader has had the previous one.  Checks: every reader gets every event
// once, in order; the gateway's SQL statements (GET /v1/_gateway/stats,
// counted on its connections) per commit are O(1): at most 3 for the
// 1,000 readers.  Notes (not asserted, the machine is shared): p50/p99 of
// commit -> a reader has it, and commit -> all have it.  Prints
// `N passed, M failed`.
'use strict';

const path = require('node:path');
const http = require('node:http');
const { check, note, summary, counts } = require(path.join(__dirname, '../node/tap.js'));
const { sleep, freshDatabase, dropDatabase, startGateway, ev } = require(path.join(__dirname, '../node/gateway_util.js'));

const DB = 'ds_gateway_scale';
const READERS = Number(process.env.DS_GW_READERS || 1000);
const COMMITS = 5;
let gw = null;

// node:http with a keep-alive agent: lighter than fetch for 1,000 loops
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
function longPoll(url) {
    return new Promise((resolve, reject) => {
        const req = http.get(url, { agent }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
            res.on('error', reject);
        });
        req.on('error', reject);
    });
}

const pct = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))];
};

async function run(db, mode) {
    gw = await startGateway({ PGDATABASE: DB, LONG_POLL_TIMEOUT_MS: '20000', GATEWAY_WAKEUP: mode });
    const stats = async () => (await fetch(gw.url + '/v1/_gateway/stats')).json();
    const stream = `s_${mode}`;
    await db.query(`SELECT state.create_collection('m_${mode}', 'm', stream => '${stream}')`);
    await db.query(`SELECT state.apply($1::jsonb, '${stream}')`, [JSON.stringify([ev('m', 'k0', { i: 0 })])]);
    const start = (await db.query(`SELECT state.tail('${stream}') AS t`)).rows[0].t;
    const got = Array.from({ length: READERS }, () => []);     // per reader: [key, time]
    let stop = false;
    const errors = [];
    const reader = async (i) => {
        let offset = start;
        while (!stop) {
            let r;
            try {
                r = await longPoll(`${gw.url}/v1/state/${stream}?offset=${offset}&live=long-poll`);
            } catch (err) {
                errors.push(err.message);
                await sleep(50);
                continue;
            }
            if (r.status === 200) {
                const now = performance.now();
                for (const e of JSON.parse(r.body)) got[i].push([e.key, now]);
                offset = r.headers['stream-next-offset'];
            } else if (r.status !== 204) {
                errors.push(`status ${r.status}`);
            }
        }
    };
    const loops = Array.from({ length: READERS }, (_, i) => reader(i));
    // all readers waiting
    for (let i = 0; i < 300 && (await stats()).longPolls < READERS; i++) await sleep(100);
    const waiting = (await stats()).longPolls;
    check(waiting >= READERS, `${mode}: ${READERS} long-poll readers wait (${waiting})`);
    const s0 = await stats();
    const perCommitAll = [];
    const perReader = [];
    for (let c = 1; c <= COMMITS; c++) {
        const key = `c${c}`;
        await db.query(`SELECT state.apply($1::jsonb, '${stream}')`, [JSON.stringify([ev('m', key, { c })])]);
        const t0 = performance.now();
        const deadline = Date.now() + 20000;
        while (Date.now() < deadline && !got.every((g) => g.some(([k]) => k === key))) await sleep(5);
        const times = got.map((g) => g.find(([k]) => k === key)?.[1]).filter((t) => t !== undefined).map((t) => t - t0);
        perReader.push(...times);
        perCommitAll.push(Math.max(...times));
        // the readers are back (waiting at the new offset) before the next commit
        for (let i = 0; i < 200 && (await stats()).longPolls < READERS; i++) await sleep(10);
    }
    const s1 = await stats();
    stop = true;
    const complete = got.every((g) => g.map(([k]) => k).join(',') === Array.from({ length: COMMITS }, (_, i) => `c${i + 1}`).join(','));
    check(complete && errors.length === 0, `${mode}: every reader got every commit once, in order`,
        `${errors.slice(0, 3).join('; ')} ${JSON.stringify(got.find((g) => g.length !== COMMITS))}`);
    // the stats requests themselves are no SQL; everything counted is the readers'
    const perCommit = (s1.statements - s0.statements) / COMMITS;
    note(`${mode}: ${READERS} readers, ${COMMITS} commits: ${s1.statements - s0.statements} statements `
        + `(${perCommit.toFixed(1)} per commit; reads ${s1.stateReads - s0.stateReads}, waits ${s1.waits - s0.waits})`);
    check(perCommit <= 3, `${mode}: O(1) queries per commit for ${READERS} readers (${perCommit.toFixed(1)} <= 3)`);
    note(`${mode}: commit -> a reader has it: p50 ${pct(perReader, 0.5).toFixed(1)} ms, p99 ${pct(perReader, 0.99).toFixed(1)} ms; `
        + `commit -> all ${READERS} have it: p50 ${pct(perCommitAll, 0.5).toFixed(1)} ms, max ${Math.max(...perCommitAll).toFixed(1)} ms (not asserted)`);
    await gw.stop();
    gw = null;
    await Promise.race([Promise.all(loops), sleep(3000)]);
}

async function main() {
    const db = await freshDatabase(DB);
    await run(db, 'listen');
    await run(db, 'wait');
    await db.end();
    await dropDatabase(DB);
}

main().catch((err) => {
    check(false, 'gateway scale test ran to the end', err.stack);
}).finally(async () => {
    if (gw) await gw.stop().catch(() => {});
    console.log(summary());
    process.exit(counts.failed > 0 ? 1 : 0);
});
