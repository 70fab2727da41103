// test/t/browser_streamdb.js -- StreamDB (@durable-streams/state with
// @tanstack/db) in a real browser follows durable_state streams through the
// HTTP gateway (clients/gateway/server.mjs).
//
// The page (test/browser/page.mjs) is bundled with esbuild from the npm
// packages of test/browser (test/run.sh installs them with npm ci) and served
// by a small HTTP server of this script on 127.0.0.1, while the gateway
// listens on localhost: every request of the page to the gateway is
// cross-origin (CORS), as in a real deployment.  Headless Chromium (Debian's
// `chromium`, installed by test/lib.sh) is driven with playwright-core; if it
// does not start the test fails.  For long-poll and then SSE (a stream each):
//
//   - createStreamDB + preload() over events written before the page came;
//   - a cross-origin GET (exposed Stream-Next-Offset) and a preflighted POST;
//   - SQL state.apply with a txid: awaitTxId() in the page resolves;
//   - 1,000 random events (insert, update, delete, upsert on a few keys of
//     two types) in batches through SQL: the page's collections equal
//     state.get_type() (sorted canonical JSON);
//   - a screenshot of the page: $DS_ARTIFACTS/browser_streamdb/<mode>.png
//     (DS_ARTIFACTS defaults to /tmp/ds-artifacts; the paths are printed).
//
// Prints `N passed, M failed`.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { check, note, summary, counts } = require('../node/tap.js');
const { rng } = require('../node/prng.js');
const H = require('../browser/helpers.js');

const BROWSER = path.join(H.ROOT, 'test/browser');
const DB = 'ds_browser_t';
const TYPES = ['item', 'note'];
const CHROMIUM = process.env.DS_CHROMIUM || '/usr/bin/chromium';
const OUT = path.join(process.env.DS_ARTIFACTS || '/tmp/ds-artifacts', 'browser_streamdb');
const SEED = Number(process.env.DS_SEED || Date.now() % 100000);

let gw = null;
let browser = null;
let pageServer = null;

// The page: an HTML shell and the bundle, on 127.0.0.1:<any port>.
async function servePage() {
    const esbuild = require(path.join(BROWSER, 'node_modules/esbuild'));
    const built = await esbuild.build({
        entryPoints: [path.join(BROWSER, 'page.mjs')],
        bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false,
        absWorkingDir: BROWSER, logLevel: 'silent',
    });
    const js = built.outputFiles[0].text;
    note(`page bundle: ${(js.length / 1024).toFixed(0)} KiB (esbuild)`);
    const html = '<!doctype html><html><head><meta charset="utf-8"><title>durable_state StreamDB</title>'
        + '<style>body{font:13px sans-serif;margin:12px}td{padding:1px 6px;font-family:monospace}</style></head>'
        + '<body><div id="root">loading</div><script type="module" src="/page.js"></script></body></html>';
    const server = http.createServer((req, res) => {
        if (req.url === '/page.js') {
            res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
            res.end(js);
        } else if (req.url === '/' || req.url === '/index.html') {
            res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
            res.end(html);
        } else if (req.url === '/favicon.ico') {
            res.writeHead(204);
            res.end();
        } else {
            res.writeHead(404);
            res.end();
        }
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

async function launchChromium() {
    const { chromium } = require(path.join(BROWSER, 'node_modules/playwright-core'));
    return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'], timeout: 30000 });
}

// One mode (long-poll or sse) on a stream of its own.
async function follow(db, pageUrl, live) {
    const stream = `web_${live.replace('-', '_')}`;
    for (const t of TYPES) {
        await db.query('SELECT state.create_collection($1, type => $2, stream => $3)', [`${t}_${stream}`, t, stream]);
    }
    const model = new Map(TYPES.map((t) => [t, new Map()]));
    const rnd = rng(SEED + (live === 'sse' ? 1 : 0));
    await H.sqlApply(db, stream, H.randomEvents(rnd, model, 50));

    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    const reads = { 'long-poll': 0, sse: 0, catchUp: 0 };
    page.on('request', (req) => {
        const u = new URL(req.url());
        if (!u.pathname.startsWith('/v1/state/') || req.method() !== 'GET') return;
        reads[u.searchParams.get('live') || 'catchUp']++;
    });
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.dsTest !== undefined, null, { timeout: 10000 });
    const url = `${gw.url}/v1/state/${stream}`;
    const st = await page.evaluate(([u, l, t]) => window.dsTest.start(u, l, t), [url, live, TYPES]);
    const origin = await page.evaluate(() => location.origin);
    note(`${live}: page at ${origin}, stream at ${url}, preload ${st.ms.toFixed(0)} ms`);
    let want = await H.getTypes(db, stream, TYPES);
    let got = await dump(page);
    check(got === canonAll(want), `${live}: after preload (cross-origin) the page's collections equal get_type`,
        H.firstDifference(parse(got), want));

    // CORS: a plain GET whose exposed headers the page can read, a preflighted POST
    const probe = await page.evaluate(([u, b]) => window.dsTest.corsProbe(u, b),
        [url, JSON.stringify([{ type: 'note', key: 'cors', value: { id: 'cors', n: 0, s: '', tags: [], nested: null }, headers: { operation: 'upsert', txid: `cors-${live}` } }])]);
    check(probe.get.status === 200 && /^\d{20}$/.test(probe.get.nextOffset || '') && probe.get.body === '[]',
        `${live}: a cross-origin GET from the page reads Stream-Next-Offset`, JSON.stringify(probe.get));
    check(probe.post.status === 200 && /^\d{20}$/.test(probe.post.nextOffset || ''),
        `${live}: a cross-origin POST (preflighted) from the page applies its events`, JSON.stringify(probe.post));

    // awaitTxId in the page for a txid written by SQL
    const latencies = [];
    for (let i = 0; i < 5; i++) {
        const txid = `tx-${live}-${SEED}-${i}`;
        await page.evaluate(([x]) => window.dsTest.armTx(x, 10000), [txid]);
        await H.sleep(50);
        const t0 = Date.now();
        await H.sqlApply(db, stream, H.randomEvents(rnd, model, 3), txid);
        const r = await page.evaluate(([x]) => window.dsTest.txResult(x), [txid]);
        latencies.push(Date.now() - t0);
        if (i === 0 || !r.ok) {
            check(r.ok, `${live}: awaitTxId('${txid}') resolves in the page after a SQL state.apply`, JSON.stringify(r));
        }
    }
    note(`${live}: SQL commit -> awaitTxId resolved in the page: ${latencies.join(', ')} ms`);
    check(latencies.every((ms) => ms < 5000), `${live}: 5 txids confirmed in the page, each within 5 s`);

    // 1,000 random events in batches; the last batch's txid marks the end
    let left = 1000;
    let batches = 0;
    const endTx = `end-${live}-${SEED}`;
    await page.evaluate(([x]) => window.dsTest.armTx(x, 30000), [endTx]);
    while (left > 0) {
        const n = Math.min(left, 1 + Math.floor(rnd() * 80));
        left -= n;
        batches++;
        await H.sqlApply(db, stream, H.randomEvents(rnd, model, n), left === 0 ? endTx : undefined);
        if (rnd() < 0.3) await H.sleep(Math.floor(rnd() * 30));
    }
    const r = await page.evaluate(([x]) => window.dsTest.txResult(x), [endTx]);
    check(r.ok, `${live}: 1,000 random events in ${batches} SQL batches: the last txid confirmed in the page`, JSON.stringify(r));
    want = await H.getTypes(db, stream, TYPES);
    got = await dump(page);
    const rows = TYPES.map((t) => `${t} ${JSON.parse(want[t]).length}`).join(', ');
    check(got === canonAll(want), `${live}: the page's collections equal state.get_type (${rows} rows)`,
        H.firstDifference(parse(got), want));
    const tail = (await db.query('SELECT state.tail($1) AS t', [stream])).rows[0].t;
    const offset = await page.evaluate(() => window.dsTest.dump().offset);
    check(offset === tail, `${live}: StreamDB's offset is the stream's tail`, `${offset} vs ${tail}`);
    const other = live === 'sse' ? 'long-poll' : 'sse';
    note(`${live}: the page's reads: ${JSON.stringify(reads)}`);
    check(reads[live] > 0 && reads[other] === 0, `${live}: the page followed the stream with live=${live} only`,
        JSON.stringify(reads));

    // a second page, opened now, catches up over the whole log (two pages of changes())
    const late = await browser.newPage();
    late.on('pageerror', (e) => errors.push(`late page: ${e}`));
    await late.goto(pageUrl);
    await late.waitForFunction(() => window.dsTest !== undefined, null, { timeout: 10000 });
    const ls = await late.evaluate(([u, l, t]) => window.dsTest.start(u, l, t), [url, live, TYPES]);
    got = await dump(late);
    check(got === canonAll(want), `${live}: a page opened after them catches up (${ls.ms.toFixed(0)} ms) and equals get_type`,
        H.firstDifference(parse(got), want));
    await late.evaluate(() => window.dsTest.close());
    await late.close();

    fs.mkdirSync(OUT, { recursive: true });
    const shot = path.join(OUT, `${live}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    check(fs.statSync(shot).size > 1000, `${live}: screenshot saved: ${shot}`);
    check(errors.length === 0, `${live}: no errors in the page`, errors.join('\n'));
    await page.evaluate(() => window.dsTest.close());
    await page.close();
}

async function dump(page) {
    const d = await page.evaluate(() => window.dsTest.dump());
    const out = {};
    for (const t of TYPES) out[t] = H.canonRows(d.collections[t]);
    return JSON.stringify(out);
}
const canonAll = (want) => JSON.stringify(want);
const parse = (s) => JSON.parse(s);

async function main() {
    note(`seed ${SEED} (DS_SEED=${SEED} repeats this run)`);
    const db = await H.freshDatabase(DB);
    gw = await H.startGateway(DB, 0, { LONG_POLL_TIMEOUT_MS: '5000' });
    note(`gateway at ${gw.url}`);
    const served = await servePage();
    pageServer = served.server;
    try {
        browser = await launchChromium();
    } catch (err) {
        check(false, `Chromium starts (${CHROMIUM})`, err.message);
        return;
    }
    check(true, `Chromium ${browser.version()} starts (${CHROMIUM}, headless)`);
    await follow(db, served.url, 'long-poll');
    await follow(db, served.url, 'sse');
    await db.end();
}

main().catch((err) => {
    check(false, 'browser test ran to the end', err.stack);
}).finally(async () => {
    await browser?.close().catch(() => {});
    pageServer?.close();
    await H.stopGateway(gw).catch(() => {});
    await H.dropDatabase(DB).catch(() => {});
    console.log(summary());
    process.exit(counts.failed > 0 ? 1 : 0);
});
