// test/browser/helpers.js -- what test/t/browser_streamdb.js and
// test/t/gateway_streamdb.js share: a database of their own, the gateway as
// a child process, random protocol events applied with SQL, and the
// comparison of a reader's collections with state.get_type().
'use strict';

const path = require('node:path');
const pg = require('../node/node_modules/pg');
const { canon } = require('../node/events.js');
const gatewayUtil = require('../node/gateway_util.js');

const { freshDatabase, dropDatabase } = gatewayUtil;

const ROOT = path.join(__dirname, '../..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts `node clients/gateway/server.mjs` on PORT (0: any free port) for
// database `database`; resolves to { child, url, port, stop } once it listens.
async function startGateway(database, port = 0, env = {}) {
    const gw = await gatewayUtil.startGateway({ PGDATABASE: database, PORT: String(port), ...env });
    return { ...gw, port: Number(new URL(gw.url).port) };
}

// Stops a gateway: SIGTERM (or `signal`), and waits for it to exit.
async function stopGateway(gw, signal = 'SIGTERM') {
    if (!gw || gw.child.exitCode !== null || gw.child.signalCode !== null) return;
    const exited = new Promise((r) => gw.child.once('exit', r));
    gw.child.kill(signal);
    await Promise.race([exited, sleep(5000)]);
}

// Random protocol events on a few keys per type, valid against `model`
// (type -> Map(key -> value), updated as events are made): insert only
// absent keys, update and delete only present ones, upsert any.
//
// Every value has the same top-level fields (id, the key, as StreamDB's
// primary key; n; s; tags; nested): StreamDB applies an update as a merge
// into the row (TanStack DB's default `partial` row update mode) where
// durable_state, the protocol and MaterializedState replace the value, so
// an update that dropped a top-level field would keep it in StreamDB.
// Below the top level anything goes.
function randomEvents(rnd, model, n, keysPerType = 6) {
    const types = [...model.keys()];
    const pick = (a) => a[Math.floor(rnd() * a.length)];
    const str = () => {
        const chars = ['a', 'b', 'é', '"', '\\', ' ', '\n', '€', '😀', '<', '>'];
        let s = '';
        for (let i = Math.floor(rnd() * 8); i > 0; i--) s += pick(chars);
        return s;
    };
    const value = (key) => ({
        id: key,
        n: Math.floor(rnd() * 2000) - 1000,
        s: str(),
        tags: Array.from({ length: Math.floor(rnd() * 3) }, str),
        nested: rnd() < 0.3 ? null : { [str() || 'k']: rnd() < 0.5 ? rnd() : { deep: [true, null, str()] } },
    });
    const events = [];
    for (let i = 0; i < n; i++) {
        const type = pick(types);
        const m = model.get(type);
        const key = `${type[0]}${Math.floor(rnd() * keysPerType)}`;
        const op = m.has(key) ? pick(['update', 'update', 'delete', 'upsert']) : pick(['insert', 'insert', 'upsert']);
        if (op === 'delete') {
            m.delete(key);
            events.push({ type, key, headers: { operation: op } });
        } else {
            const v = value(key);
            m.set(key, v);
            events.push({ type, key, value: v, headers: { operation: op } });
        }
    }
    return events;
}

// state.apply with SQL; the batch's last event carries `txid` if given.
async function sqlApply(db, stream, events, txid) {
    if (txid) {
        const last = events[events.length - 1];
        last.headers = { ...last.headers, txid };
    }
    return (await db.query('SELECT applied, last_offset FROM state.apply($1::jsonb, $2)',
        [JSON.stringify(events), stream])).rows[0];
}

// state.get_type of each type as sorted canonical JSON: [[key, value], ...].
async function getTypes(db, stream, types) {
    const out = {};
    for (const t of types) {
        const r = await db.query('SELECT key, value FROM state.get_type($1, $2)', [t, stream]);
        out[t] = canonRows(r.rows.map((x) => [x.key, x.value]));
    }
    return out;
}

// [[key, value], ...] in key order, as canonical JSON (sorted members).
function canonRows(rows) {
    return canon([...rows].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

// Where a check's difference is: the first type whose rows differ, shortened.
function firstDifference(got, want) {
    for (const t of Object.keys(want)) {
        if (got[t] !== want[t]) return `${t}: got ${String(got[t]).slice(0, 300)} want ${String(want[t]).slice(0, 300)}`;
    }
    return '';
}

module.exports = {
    ROOT, sleep, pg, freshDatabase, dropDatabase, startGateway, stopGateway,
    randomEvents, sqlApply, getTypes, canonRows, firstDifference,
};
