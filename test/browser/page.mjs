// test/browser/page.mjs -- the page of test/t/browser_streamdb.js, bundled
// with esbuild (with @durable-streams/state and @tanstack/db) when the test
// runs.  It follows a durable_state stream through the HTTP gateway with
// StreamDB, shows each collection as a table, and gives the test (through
// playwright's page.evaluate) window.dsTest:
//
//   start(url, live, types)  createStreamDB + preload; resolves when up to date
//   armTx(txid, ms)          starts awaitTxId(txid, ms) and notes when it settles
//   txResult(txid)           waits for it: { ok, ms, error }
//   dump()                   { type: [[key, value], ...] } of every collection
//   corsProbe(url)           a cross-origin GET (its exposed headers) and POST
//   close()                  closes the StreamDB
import { createStreamDB, createStateSchema } from '@durable-streams/state/db';

// StreamDB validates every row with a Standard Schema: this one takes any object.
const anyObject = {
    '~standard': {
        version: 1,
        vendor: 'durable_state-test',
        validate: (value) => (value && typeof value === 'object'
            ? { value } : { issues: [{ message: 'not an object' }] }),
    },
};

// What StreamDB or TanStack DB add to a row: the primary key field is the
// event's key (the values carry it as `id` too), `_seq` is StreamDB's
// insertion order, the `$` fields are TanStack DB's virtual properties.
const ADDED = ['_seq', '$synced', '$origin', '$key', '$collectionId', '$hasPendingWrites'];

let db = null;
let types = [];
const txs = new Map();

function render() {
    const root = document.getElementById('root');
    root.textContent = '';
    const h = document.createElement('h1');
    h.textContent = `StreamDB over the durable_state gateway (${document.body.dataset.live || '-'})`;
    root.append(h);
    const p = document.createElement('p');
    p.id = 'status';
    p.textContent = `${document.body.dataset.url || ''} offset ${db ? db.offset : '-'}`;
    root.append(p);
    for (const t of types) {
        const rows = db ? [...db.collections[t].entries()] : [];
        const h2 = document.createElement('h2');
        h2.textContent = `${t}: ${rows.length} rows`;
        root.append(h2);
        const table = document.createElement('table');
        table.border = '1';
        for (const [k, v] of rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
            const tr = document.createElement('tr');
            const td1 = document.createElement('td');
            td1.textContent = k;
            const td2 = document.createElement('td');
            td2.textContent = JSON.stringify(strip(v));
            tr.append(td1, td2);
            table.append(tr);
        }
        root.append(table);
    }
}

function strip(row) {
    const v = { ...row };
    for (const f of ADDED) delete v[f];
    return v;
}

window.dsTest = {
    async start(url, live, collectionTypes) {
        types = collectionTypes;
        document.body.dataset.live = String(live);
        document.body.dataset.url = url;
        const def = {};
        for (const t of types) def[t] = { schema: anyObject, type: t, primaryKey: 'id' };
        db = createStreamDB({
            streamOptions: { url, contentType: 'application/json', warnOnHttp: false },
            live,
            state: createStateSchema(def),
        });
        const t0 = performance.now();
        await db.preload();
        for (const t of types) db.collections[t].subscribeChanges(() => render());
        render();
        return { ms: performance.now() - t0, offset: db.offset };
    },
    armTx(txid, ms = 10000) {
        const t0 = performance.now();
        const p = db.utils.awaitTxId(txid, ms).then(
            () => ({ ok: true, ms: performance.now() - t0 }),
            (e) => ({ ok: false, ms: performance.now() - t0, error: String(e && e.message) }));
        txs.set(txid, p);
        return true;
    },
    txResult(txid) {
        return txs.get(txid);
    },
    dump() {
        render();
        const out = {};
        for (const t of types) {
            out[t] = [...db.collections[t].entries()].map(([k, v]) => [k, strip(v)]);
        }
        return { offset: db.offset, collections: out };
    },
    async corsProbe(url, body) {
        const g = await fetch(`${url}?offset=now`);
        const get = { status: g.status, nextOffset: g.headers.get('stream-next-offset'), body: await g.text() };
        // application/json makes this a preflighted request
        const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        return { get, post: { status: r.status, nextOffset: r.headers.get('stream-next-offset'), body: await r.text() } };
    },
    close() {
        if (db) db.close();
        db = null;
    },
};
