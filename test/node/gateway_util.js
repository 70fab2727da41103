// test/node/gateway_util.js -- what the gateway tests (test/t/gateway_*.js)
// share: a fresh database with the extension, start clients/gateway/server.mjs
// as a child process on a free port, stop it, and read SSE events from a
// fetch response.
'use strict';

const path = require('node:path');
const { spawn } = require('node:child_process');
const pg = require('pg');

const ROOT = path.join(__dirname, '../..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A fresh database with the extension; returns a connected pg.Client to it.
async function freshDatabase(name) {
    const admin = new pg.Client({ database: process.env.PGDATABASE });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const db = new pg.Client({ database: name });
    db.on('error', () => {});   // terminated by the final DROP DATABASE ... WITH (FORCE)
    await db.connect();
    await db.query('CREATE EXTENSION durable_state');
    return db;
}

async function dropDatabase(name) {
    const admin = new pg.Client({ database: process.env.PGDATABASE });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
}

// Starts the gateway with `env` added to the environment; resolves
// { child, url, stop() } once it prints its address.
function startGateway(env = {}) {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [path.join(ROOT, 'clients/gateway/server.mjs')], {
            env: { ...process.env, PORT: '0', ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        const timer = setTimeout(() => reject(new Error(`gateway did not start: ${out}`)), 15000);
        child.stdout.on('data', (d) => {
            out += d;
            const m = /listening on (http:\/\/\S+)/.exec(out);
            if (m) {
                clearTimeout(timer);
                resolve({
                    child,
                    url: m[1],
                    async stop() {
                        if (child.exitCode !== null) return;
                        const exited = new Promise((r) => child.on('exit', r));
                        child.kill('SIGTERM');
                        await Promise.race([exited, sleep(5000)]);
                    },
                });
            }
        });
        child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
        child.on('exit', (code) => reject(new Error(`gateway exited with ${code}: ${out}`)));
    });
}

// Reads SSE events ({ type, data }) from a fetch response until
// `until(events)` holds or `ms` pass.
async function sseRead(res, until, ms = 5000) {
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    const events = [];
    const deadline = Date.now() + ms;
    while (!until(events) && Date.now() < deadline) {
        const r = await Promise.race([reader.read(), sleep(deadline - Date.now()).then(() => null)]);
        if (!r || r.done) break;
        buf += dec.decode(r.value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const type = /^event: ?(.*)$/m.exec(block)?.[1];
            const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('\n');
            events.push({ type, data });
        }
    }
    reader.cancel().catch(() => {});
    return events;
}

const ev = (type, key, value, op = 'insert', extra = {}) => ({ type, key, value, headers: { operation: op, ...extra } });

module.exports = { ROOT, sleep, freshDatabase, dropDatabase, startGateway, sseRead, ev };
