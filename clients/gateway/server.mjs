// clients/gateway/server.mjs -- a Durable Streams HTTP server on PostgreSQL.
//
//   cd clients/gateway && npm ci && node server.mjs
//
// Configuration (environment): PORT (default 4437), the libpq variables
// (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD) or DATABASE_URL,
// GATEWAY_SCHEMA (default ds_gateway: the gateway's own tables),
// LONG_POLL_TIMEOUT_MS (default 30000), MAX_BODY_BYTES (default 16 MiB),
// PG_POOL_MAX (default 10); access: GATEWAY_AUTH (optional|required),
// GATEWAY_ANON_ROLE, GATEWAY_AUTH_MODULE, GATEWAY_TOKEN_CACHE_MS (see
// Access below).
//
// Two route families:
//   /v1/state/<stream>  a durable_state stream (JSON mode): GET reads
//                       state.changes() (state.snapshot() for offset=-1 on a
//                       pruned stream), long-poll and SSE are woken by the
//                       stream's NOTIFY; POST applies protocol events with
//                       state.apply; HEAD gives state.tail().
//   /v1/stream/<path>   generic Durable Streams (any content type) kept in
//                       tables of GATEWAY_SCHEMA, offsets %016d_%016d;
//                       forks (Stream-Forked-From) read their source chain.
//
// One LISTEN connection per process (Hub) serves every waiting reader;
// identical concurrent reads share one query (Coalescer).  The HTTP
// semantics follow the reference server (@durable-streams/server 0.3.x).

import http from 'node:http';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { resolve as resolvePath } from 'node:path';
import pg from 'pg';

const H = {
    offset: 'Stream-Next-Offset', upToDate: 'Stream-Up-To-Date', cursor: 'Stream-Cursor',
    closed: 'Stream-Closed', ttl: 'Stream-TTL', expiresAt: 'Stream-Expires-At', seq: 'Stream-Seq',
    pid: 'Producer-Id', pepoch: 'Producer-Epoch', pseq: 'Producer-Seq',
    pexpected: 'Producer-Expected-Seq', preceived: 'Producer-Received-Seq',
};
const ZERO = '0000000000000000_0000000000000000';
const CURSOR_EPOCH = Date.parse('2024-10-09T00:00:00.000Z');
const CURSOR_INTERVAL = 20;
const STATE_PAGE = 1000;
const GENERIC_PAGE = 1000;
const GENERIC_CHANNEL = 'ds_gateway_streams';

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

class HttpError extends Error {
    constructor(status, message, headers = {}, body = undefined) {
        super(message);
        this.status = status;
        this.headers = headers;
        this.body = body;
    }
}

// Stream-Cursor (protocol section 8.1): the current 20 s interval number, or
// past the client's cursor (with jitter) when the client is not behind.
export function responseCursor(clientCursor) {
    const now = Math.floor((Date.now() - CURSOR_EPOCH) / (CURSOR_INTERVAL * 1000));
    const c = clientCursor === undefined || clientCursor === null ? NaN : parseInt(clientCursor, 10);
    if (Number.isNaN(c) || c < now) {
        return String(now);
    }
    const jitter = Math.max(1, Math.ceil((1 + Math.floor(Math.random() * 3600)) / CURSOR_INTERVAL));
    return String(c + jitter);
}

function normalizeType(ct) {
    return (ct || '').split(';')[0].trim().toLowerCase();
}

function isJsonType(ct) {
    return normalizeType(ct) === 'application/json';
}

function etagOf(path, start, end, closed) {
    return `"${Buffer.from(path).toString('base64')}:${start}:${end}${closed ? ':c' : ''}"`;
}

// A page of events (each a JSON text) as a JSON array.
function jsonArray(texts) {
    return `[${texts.join(',')}]`;
}

function sseData(payload) {
    return payload.split(/\r\n|\r|\n/).map((l) => `data:${l}`).join('\n') + '\n\n';
}

function readBody(req, limit) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let n = 0;
        let over = false;
        req.on('data', (c) => {
            n += c.length;
            if (n > limit) {
                over = true;
                return;
            }
            chunks.push(c);
        });
        req.on('end', () => (over ? reject(new HttpError(413, `request body larger than ${limit} bytes`))
            : resolve(Buffer.concat(chunks))));
        req.on('error', reject);
    });
}

function header(req, name) {
    const v = req.headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
}

// Producer-Id/Epoch/Seq: all or none, non-negative integers.
function producerHeaders(req) {
    const id = header(req, H.pid), e = header(req, H.pepoch), s = header(req, H.pseq);
    if (id === undefined && e === undefined && s === undefined) {
        return null;
    }
    if (id === undefined || e === undefined || s === undefined) {
        throw new HttpError(400, 'All producer headers (Producer-Id, Producer-Epoch, Producer-Seq) must be provided together');
    }
    if (id === '') {
        throw new HttpError(400, 'Invalid Producer-Id: must not be empty');
    }
    for (const [n, v] of [['Producer-Epoch', e], ['Producer-Seq', s]]) {
        if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
            throw new HttpError(400, `Invalid ${n}: must be a non-negative integer`);
        }
    }
    return { id, epoch: Number(e), seq: Number(s) };
}

// The reference server's producer rules, against the stored row (or null).
function checkProducer(row, p) {
    if (!row) {
        return p.seq === 0 ? { status: 'accepted' } : { status: 'sequence_gap', expected: 0 };
    }
    const epoch = Number(row.epoch), last = Number(row.last_seq);
    if (p.epoch < epoch) {
        return { status: 'stale_epoch', epoch };
    }
    if (p.epoch > epoch) {
        return p.seq === 0 ? { status: 'accepted' } : { status: 'invalid_epoch_seq' };
    }
    if (p.seq <= last) {
        return { status: 'duplicate', last };
    }
    if (p.seq === last + 1) {
        return { status: 'accepted' };
    }
    return { status: 'sequence_gap', expected: last + 1 };
}

function producerRefusal(r, p) {
    switch (r.status) {
        case 'stale_epoch':
            return new HttpError(403, 'Stale producer epoch', { [H.pepoch]: String(r.epoch) });
        case 'invalid_epoch_seq':
            return new HttpError(400, 'New epoch must start with sequence 0');
        case 'sequence_gap':
            return new HttpError(409, 'Producer sequence gap',
                { [H.pexpected]: String(r.expected), [H.preceived]: String(p.seq) });
        default:
            return null;
    }
}

// SQLSTATE -> HTTP status for the state routes.
function statusOfSqlstate(code, message) {
    if (code === '42704' && /^stream ".*" does not exist/.test(message)) return 404;
    if (code === '55000' && /no longer retained/.test(message)) return 410;
    if (code === '54000') return 413;
    if (code === '42501') return 403;
    if (['23505', '40001', '40P01', 'P0002', '55000', '55P03'].includes(code)) return 409;
    if (/^(22|23|42)/.test(code)) return 400;
    return 500;
}

function pgError(err) {
    if (!err || !err.code || !/^[0-9A-Z]{5}$/.test(err.code)) {
        return err;
    }
    const status = statusOfSqlstate(err.code, err.message);
    const body = JSON.stringify({
        error: { sqlstate: err.code, message: err.message, detail: err.detail, hint: err.hint },
    });
    return new HttpError(status, err.message, { 'content-type': 'application/json' }, body);
}

// ---------------------------------------------------------------------------
// Hub: the process's one LISTEN connection and the readers waiting on it
// ---------------------------------------------------------------------------

export class Hub {
    constructor(connect) {
        this.connect = connect;
        this.waiters = new Map();      // channel -> Set<fn(payload)>
        this.listening = new Set();    // channels LISTENed on this.client
        this.pending = new Map();      // channel -> Promise of its LISTEN
        this.client = null;
        this.closed = false;
        this.notifications = 0;
        // generations: a channel's count of notifications and of LISTENs
        // taking effect, plus one for every reconnect (epoch).  A read
        // started at generation >= g has seen every commit notified before
        // a waiter registered at g, and every commit made before the LISTEN
        // that waiter relies on: a commit before the LISTEN sends no
        // notification the Hub sees, so a LISTEN taking effect is a new
        // generation (a read of the channel's stream started before it, or
        // while it was not listened at all, may have missed such commits).
        this.gens = new Map();         // channel -> notifications + LISTENs
        this.epoch = 0;
    }

    gen(channel) {
        return this.epoch + (this.gens.get(channel) || 0);
    }

    async start() {
        const client = this.connect();
        client.on('notification', (msg) => {
            this.notifications++;
            this.gens.set(msg.channel, (this.gens.get(msg.channel) || 0) + 1);
            this.wake(msg.channel, msg.payload);
        });
        client.on('error', () => this.reconnect(client));
        client.on('end', () => this.reconnect(client));
        await client.connect();
        this.client = client;
        this.listening.clear();
        this.pending.clear();
        for (const ch of [...this.waiters.keys()]) {
            await this.listen(ch);
        }
        // waiters registered while there was no connection rely on a LISTEN
        // that was not in effect: commits since went unnotified
        for (const ch of [...this.waiters.keys()]) this.wake(ch, null);
    }

    reconnect(client) {
        if (this.client !== client || this.closed) return;
        this.client = null;
        this.epoch++;
        // Readers re-read after a wake-up; waking them all loses nothing.
        for (const ch of [...this.waiters.keys()]) this.wake(ch, null);
        setTimeout(() => this.start().catch(() => this.reconnect(client)), 500);
    }

    async listen(channel) {
        if (this.listening.has(channel) || !this.client) return;
        let p = this.pending.get(channel);
        if (!p) {
            p = this.client.query(`LISTEN ${pg.escapeIdentifier(channel)}`).then(() => {
                this.listening.add(channel);
                this.pending.delete(channel);
                // a new generation: see this.gens
                this.gens.set(channel, (this.gens.get(channel) || 0) + 1);
            });
            this.pending.set(channel, p);
        }
        await p;
    }

    // Wakes the channel's waiters; `at` is the shared-read counter now, so
    // all of them may share one read started from here on.
    wake(channel, payload) {
        const set = this.waiters.get(channel);
        if (!set) return;
        const at = this.queriesAtSubscribe ? this.queriesAtSubscribe() : -1;
        const gen = this.gen(channel);
        for (const fn of [...set]) fn(payload, at, gen);
    }

    // Registers a waiter BEFORE the caller re-reads (so no commit between the
    // read and the wait is missed); returns { promise, cancel }.  The
    // promise resolves with true when woken, false on timeout.
    async subscribe(channel, filter = () => true) {
        let set = this.waiters.get(channel);
        if (!set) {
            set = new Set();
            this.waiters.set(channel, set);
        }
        let resolve;
        const promise = new Promise((r) => { resolve = r; });
        let timer = null;
        const sub = { promise, after: -1, wokeAt: -1, gen: 0, wokeGen: 0 };
        const fn = (payload, at, gen) => {
            if (payload !== null && !filter(payload)) return;
            sub.wokeAt = at;
            sub.wokeGen = gen;
            done(true);
        };
        const done = (v) => {
            set.delete(fn);
            if (set.size === 0 && this.waiters.get(channel) === set) this.waiters.delete(channel);
            if (timer) clearTimeout(timer);
            resolve(v);
        };
        sub.after = this.queriesAtSubscribe ? this.queriesAtSubscribe() : -1;
        set.add(fn);
        sub.wait = (ms) => {
            timer = setTimeout(() => done(false), ms);
            return promise;
        };
        sub.cancel = () => done(false);
        await this.listen(channel);
        // after the LISTEN is in effect: a read from this generation on
        // sees what was committed before any later notification
        sub.gen = this.gen(channel);
        sub.wokeGen = sub.gen;
        return sub;
    }

    // A waiter for as long as the caller keeps it: fn(at) on every
    // notification of the channel (and on a reconnect).
    async watch(channel, fn) {
        let set = this.waiters.get(channel);
        if (!set) {
            set = new Set();
            this.waiters.set(channel, set);
        }
        const cb = (payload, at, gen) => fn(at, gen);
        const after = this.queriesAtSubscribe ? this.queriesAtSubscribe() : -1;
        set.add(cb);
        await this.listen(channel);
        return {
            after,
            gen: this.gen(channel),
            close: () => {
                set.delete(cb);
                if (set.size === 0 && this.waiters.get(channel) === set) this.waiters.delete(channel);
            },
        };
    }

    async close() {
        this.closed = true;
        for (const ch of [...this.waiters.keys()]) this.wake(ch, null);
        if (this.client) await this.client.end().catch(() => {});
    }
}

// Identical reads in flight share one query.  A reader that has just
// registered its wait passes `after` (this.queries when it registered): it
// joins only a query started after that, since an older one may have begun
// before a commit whose notification came before the registration.
class Coalescer {
    constructor() {
        this.inflight = new Map();     // key -> { seq, promise }
        this.queries = 0;
    }

    run(key, fn, after = -1) {
        const e = this.inflight.get(key);
        if (e && e.seq > after) {
            return e.promise;
        }
        const seq = ++this.queries;
        const promise = fn().finally(() => {
            if (this.inflight.get(key)?.seq === seq) this.inflight.delete(key);
        });
        this.inflight.set(key, { seq, promise });
        return promise;
    }
}

// The state routes' shared reads: one query per key (role, stream, offset)
// and generation of the stream's channel (Hub.gens).  A reader that
// registered its wait at generation g (Hub.subscribe) may take the result
// of any read started at generation >= g, in flight or finished: such a
// read began after every notification the reader did not wait for, so it
// saw those commits, and any later commit wakes the reader again.  So 1,000
// long-poll readers coming back at the new offset at different moments
// share one read until the next notification.  A reader without a wait
// (minGen null) joins only a read in flight.  Finished results are dropped
// when a newer read of the key starts, or after about 5 s (sweep), which
// bounds the memory they hold to what 5 s of reads return.
class SharedReads {
    constructor() {
        this.entries = new Map();      // key -> { gen, promise, done, at }
        this.queries = 0;
    }

    run(key, gen, fn, minGen = null) {
        const e = this.entries.get(key);
        if (e && (minGen === null ? !e.done : e.gen >= minGen)) return e.promise;
        this.queries++;
        const entry = { gen, done: false, at: Date.now() };
        entry.promise = fn().then((v) => {
            entry.done = true;
            entry.at = Date.now();
            return v;
        }, (err) => {
            if (this.entries.get(key) === entry) this.entries.delete(key);
            throw err;
        });
        this.entries.set(key, entry);
        if (this.entries.size > 5000) this.sweep(5000);
        return entry.promise;
    }

    sweep(ageMs) {
        const old = Date.now() - ageMs;
        for (const [k, v] of this.entries) if (v.done && v.at < old) this.entries.delete(k);
    }
}

// ---------------------------------------------------------------------------
// Access: a request's identity -> a Postgres role
// ---------------------------------------------------------------------------

export function tokenHash(token) {
    return createHash('sha256').update(token, 'utf8').digest();
}

// Who a request is, as { role, private }: role is the Postgres role its
// state reads and writes run as (SET LOCAL ROLE in their transaction), or
// null for the gateway's own login role; private says that what it reads
// may differ from what another caller reads (no shared caching).
//
//   1. GATEWAY_AUTH_MODULE's `role(req)`, when set: a role name, or
//      null/undefined to go on with 2 and 3, or false (or a throw) for 401;
//   2. `Authorization: Bearer <token>`: the role of sha256(token) in
//      <schema>.tokens (the table keeps hashes, never tokens); unknown 401;
//   3. no credentials: GATEWAY_ANON_ROLE if set, else 401 with
//      GATEWAY_AUTH=required, else the gateway's own role.
export class Access {
    constructor(gw, env) {
        this.gw = gw;
        this.required = (env.GATEWAY_AUTH || 'optional') === 'required';
        this.anonRole = env.GATEWAY_ANON_ROLE || null;
        this.modulePath = env.GATEWAY_AUTH_MODULE || null;
        this.cacheMs = Number(env.GATEWAY_TOKEN_CACHE_MS ?? 5000);
        this.hook = null;
        this.cache = new Map();        // hash (hex) -> { role, at }
    }

    async start() {
        if (this.modulePath) {
            const mod = await import(pathToFileURL(resolvePath(this.modulePath)).href);
            this.hook = mod.role || mod.default?.role || mod.default;
            if (typeof this.hook !== 'function') {
                throw new Error(`GATEWAY_AUTH_MODULE ${this.modulePath} exports no role(req) function`);
            }
        }
    }

    static unauthorized(message) {
        return new HttpError(401, message, {
            'content-type': 'application/json', 'www-authenticate': 'Bearer realm="durable_state"',
        }, JSON.stringify({ error: { message } }));
    }

    async identify(req) {
        if (this.hook) {
            let r;
            try {
                r = await this.hook(req);
            } catch (err) {
                if (err instanceof HttpError) throw err;
                throw Access.unauthorized(err?.message || 'not authorized');
            }
            if (r === false) throw Access.unauthorized('not authorized');
            if (typeof r === 'string' && r !== '') return { role: r, private: true };
        }
        const auth = header(req, 'authorization');
        if (auth !== undefined) {
            const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
            if (!m) throw Access.unauthorized('Authorization must be "Bearer <token>"');
            const role = await this.tokenRole(m[1]);
            if (!role) throw Access.unauthorized('unknown token');
            return { role, private: true };
        }
        if (this.anonRole) return { role: this.anonRole, private: false };
        if (this.required) throw Access.unauthorized('authentication required');
        return { role: null, private: false };
    }

    async tokenRole(token) {
        const h = tokenHash(token);
        const key = h.toString('hex');
        const hit = this.cache.get(key);
        if (hit && Date.now() - hit.at < this.cacheMs) return hit.role;
        const r = await this.gw.pool.query(`SELECT role FROM ${this.gw.S}.tokens WHERE token_hash = $1`, [h]);
        const role = r.rows[0]?.role ?? null;
        if (this.cacheMs > 0) {
            if (this.cache.size > 10000) this.cache.clear();
            this.cache.set(key, { role, at: Date.now() });
        }
        return role;
    }
}

// Runs fn(client) in a transaction on a client of `pool` under `role`
// (SET LOCAL ROLE: it ends with the transaction, so the pooled connection
// goes back as the gateway's role, after an error too; a connection whose
// ROLLBACK failed is discarded).  role null: the gateway's own role.
export async function asRole(pool, role, fn) {
    const c = await pool.connect();
    let broken = null;
    try {
        if (role === null) {
            await c.query('BEGIN');
        } else {
            try {
                await c.query(`BEGIN; SET LOCAL ROLE ${pg.escapeIdentifier(role)}`);
            } catch (err) {
                // no such role (22023) or not granted to the gateway (42501)
                await c.query('ROLLBACK').catch((e) => { broken = e; });
                const e = pgError(err);
                if (e instanceof HttpError) e.status = 403;
                throw e;
            }
        }
        const r = await fn(c);
        await c.query('COMMIT');
        return r;
    } catch (err) {
        if (!broken) await c.query('ROLLBACK').catch((e) => { broken = e; });
        throw err;
    } finally {
        c.release(broken || undefined);
    }
}

// ---------------------------------------------------------------------------
// the gateway
// ---------------------------------------------------------------------------

export class Gateway {
    constructor(opts = {}) {
        const env = opts.env || process.env;
        const conn = env.DATABASE_URL ? { connectionString: env.DATABASE_URL } : {};
        this.schema = opts.schema || env.GATEWAY_SCHEMA || 'ds_gateway';
        this.longPollMs = Number(opts.longPollMs || env.LONG_POLL_TIMEOUT_MS || 30000);
        this.maxBody = Number(opts.maxBody || env.MAX_BODY_BYTES || 16 * 1024 * 1024);
        this.stats = { statements: 0, waits: 0, waitsShared: 0, longPolls: 0 };
        const max = Number(env.PG_POOL_MAX || 10);
        this.pool = this.makePool({ ...conn, max, application_name: 'ds_gateway' });
        // reads of /v1/state may go to a hot standby (READ_DATABASE_URL);
        // writes, producers, tokens and generic streams stay on the primary
        this.readUrl = env.READ_DATABASE_URL || null;
        this.readPool = this.readUrl
            ? this.makePool({ connectionString: this.readUrl, max, application_name: 'ds_gateway_read' }) : this.pool;
        // wake-ups: 'listen' (one LISTEN connection) or 'wait' (waiting
        // reads, state.changes(..., wait_ms), one per stream, offset and
        // role, shared by its readers; the only way on a standby)
        this.wakeup = env.GATEWAY_WAKEUP || (this.readUrl ? 'wait' : 'listen');
        if (!['listen', 'wait'].includes(this.wakeup)) throw new Error(`GATEWAY_WAKEUP must be listen or wait, not ${this.wakeup}`);
        this.waitPool = this.makePool({
            ...(this.readUrl ? { connectionString: this.readUrl } : conn),
            max: Number(env.WAIT_POOL_MAX || 20), application_name: 'ds_gateway_wait',
        });
        this.waits = new Map();        // role\0stream\0since -> { promise, done, at, page }
        this.hub = new Hub(() => new pg.Client({ ...conn, application_name: 'ds_gateway_listen' }));
        this.reads = new Coalescer();         // generic streams
        this.stateReads = new SharedReads();  // state streams
        this.hub.queriesAtSubscribe = () => this.reads.queries;
        this.channels = new Map();     // state stream -> its NOTIFY channel
        this.sse = new Set();
        this.closing = false;
        this.S = pg.escapeIdentifier(this.schema);
        this.access = new Access(this, env);
    }

    // A pg.Pool whose clients count their statements (stats.statements:
    // what GET /v1/_gateway/stats reports, for the queries-per-commit tests).
    makePool(opts) {
        const pool = new pg.Pool(opts);
        pool.on('error', () => {});
        pool.on('connect', (c) => {
            const query = c.query.bind(c);
            c.query = (...a) => {
                this.stats.statements++;
                return query(...a);
            };
        });
        return pool;
    }

    // A read query as `role` (see asRole) on the read pool (the standby's,
    // with READ_DATABASE_URL); the gateway's role without one.
    q(role, text, params) {
        if (role === null || role === undefined) return this.readPool.query(text, params);
        return asRole(this.readPool, role, (c) => c.query(text, params));
    }

    // The stream's tail for `role`.  A role under row-level security may
    // not call state.tail (42501): its access to the stream is checked by
    // reading changes() from the tail as itself, then the tail (a number the
    // stream's notifications show anyone anyway) is read as the gateway.
    async tailOf(role, stream) {
        if (role === null || role === undefined) {
            return (await this.readPool.query('SELECT state.tail($1) AS t', [stream])).rows[0].t;
        }
        return asRole(this.readPool, role, async (c) => {
            await c.query(`SELECT count(*) FROM state.changes($1, 'now', 1)`, [stream]);
            await c.query('SET LOCAL ROLE NONE');
            return (await c.query('SELECT state.tail($1) AS t', [stream])).rows[0].t;
        });
    }

    async start(port) {
        await this.setupSchema();
        await this.access.start();
        if (this.wakeup === 'wait') {
            // waiting reads need state.changes(stream, since, max_events,
            // wait_ms) (durable_state 0.6.0) where the reads go
            const r = await this.readPool.query(
                "SELECT to_regprocedure('state.changes(text,text,integer,integer)') IS NOT NULL AS ok").catch(() => null);
            if (!r?.rows[0]?.ok) {
                console.error('gateway: state.changes has no wait_ms where reads go: waking readers with LISTEN');
                this.wakeup = 'listen';
            }
        }
        await this.hub.start();
        this.server = http.createServer((req, res) => {
            this.handle(req, res).catch((err) => this.fail(res, err));
        });
        this.server.keepAliveTimeout = 65000;
        await new Promise((r) => this.server.listen(port, r));
        this.sweeper = setInterval(() => this.sweepExpired().catch(() => {}), 60000);
        this.sweeper.unref();
        this.readSweeper = setInterval(() => this.stateReads.sweep(5000), 5000);
        this.readSweeper.unref();
        return this.server.address().port;
    }

    async stop() {
        this.closing = true;
        clearInterval(this.sweeper);
        clearInterval(this.readSweeper);
        for (const res of this.sse) res.end();
        await this.hub.close();
        await new Promise((r) => (this.server ? this.server.close(r) : r()));
        this.server?.closeAllConnections?.();
        await this.pool.end();
        if (this.readPool !== this.pool) await this.readPool.end();
        // waiting reads end by themselves within LONG_POLL_TIMEOUT_MS
        this.waitPool.end().catch(() => {});
    }

    // The gateway's own tables: producer state (both route families) and
    // the generic streams with their messages.  Created at start, idempotent.
    async setupSchema() {
        const S = this.S;
        const c = await this.pool.connect();
        try {
            await c.query('SELECT pg_advisory_lock(hashtext($1))', [`ds_gateway:${this.schema}`]);
            await c.query(`
                CREATE SCHEMA IF NOT EXISTS ${S};
                CREATE TABLE IF NOT EXISTS ${S}.producers (
                    kind text NOT NULL,           -- 'state' or 'stream'
                    stream text NOT NULL,
                    producer_id text NOT NULL,
                    epoch bigint NOT NULL,
                    last_seq bigint NOT NULL,
                    last_offset text,
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (kind, stream, producer_id));
                CREATE TABLE IF NOT EXISTS ${S}.streams (
                    path text PRIMARY KEY,
                    content_type text NOT NULL,
                    ttl_seconds bigint,
                    expires_at text,
                    closed boolean NOT NULL DEFAULT false,
                    closed_by jsonb,
                    tail text NOT NULL DEFAULT '${ZERO}',
                    last_stream_seq text,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    accessed_at timestamptz NOT NULL DEFAULT now());
                CREATE TABLE IF NOT EXISTS ${S}.messages (
                    path text NOT NULL REFERENCES ${S}.streams ON DELETE CASCADE,
                    "offset" text NOT NULL,
                    data bytea NOT NULL,
                    PRIMARY KEY (path, "offset"));
                -- forks (added later; existing tables gain the columns): a
                -- fork reads its source's messages up to fork_offset (through
                -- the source's own source, and so on) and its own after it; a
                -- stream deleted while forks still read it is kept, deleted
                -- (410), until its last fork goes
                ALTER TABLE ${S}.streams
                    ADD COLUMN IF NOT EXISTS forked_from text,
                    ADD COLUMN IF NOT EXISTS fork_offset text,
                    ADD COLUMN IF NOT EXISTS fork_sub_offset bigint NOT NULL DEFAULT 0,
                    ADD COLUMN IF NOT EXISTS deleted boolean NOT NULL DEFAULT false;
                CREATE INDEX IF NOT EXISTS streams_forked_from ON ${S}.streams (forked_from)
                    WHERE forked_from IS NOT NULL;
                -- bearer tokens -> roles (Access): sha256 of the token, never
                -- the token; the gateway's login role must be able to SET
                -- ROLE to each role (GRANT role TO gateway_login)
                CREATE TABLE IF NOT EXISTS ${S}.tokens (
                    token_hash bytea PRIMARY KEY,
                    role name NOT NULL,
                    note text,
                    created_at timestamptz NOT NULL DEFAULT now());
                REVOKE ALL ON ${S}.tokens FROM PUBLIC;`);
        } finally {
            await c.query('SELECT pg_advisory_unlock(hashtext($1))', [`ds_gateway:${this.schema}`]).catch(() => {});
            c.release();
        }
    }

    fail(res, err) {
        if (!(err instanceof HttpError)) {
            err = pgError(err);
        }
        if (!(err instanceof HttpError)) {
            console.error('gateway:', err);
            err = new HttpError(500, 'internal error');
        }
        if (res.headersSent) {
            res.end();
            return;
        }
        res.writeHead(err.status, { 'content-type': 'text/plain', ...err.headers });
        res.end(err.body ?? err.message);
    }

    async handle(req, res) {
        res.setHeader('access-control-allow-origin', '*');
        res.setHeader('access-control-allow-methods', 'GET, POST, PUT, DELETE, HEAD, OPTIONS');
        res.setHeader('access-control-allow-headers',
            'content-type, authorization, Stream-Seq, Stream-TTL, Stream-Expires-At, Stream-Closed, Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset, Producer-Id, Producer-Epoch, Producer-Seq, If-None-Match');
        res.setHeader('access-control-expose-headers',
            'Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Producer-Epoch, Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq, etag, content-type, content-encoding, vary, location');
        res.setHeader('x-content-type-options', 'nosniff');
        res.setHeader('cross-origin-resource-policy', 'cross-origin');
        const url = new URL(req.url ?? '/', 'http://gateway');
        const method = (req.method || 'GET').toUpperCase();
        if (this.closing) {
            // shutting down: a read begun now would end at once (an SSE
            // stream so short that clients give up on SSE after a few);
            // 503 closes the connection and makes clients retry, elsewhere
            // or on the next process
            res.writeHead(503, { 'retry-after': '1', connection: 'close', 'content-type': 'text/plain' });
            res.end('the gateway is shutting down');
            return;
        }
        if (method === 'OPTIONS') {
            res.writeHead(204);
            res.end();
            return;
        }
        let m;
        if ((m = /^\/v1\/state\/([^/]+)$/.exec(url.pathname))) {
            const stream = decodeURIComponent(m[1]);
            const who = await this.access.identify(req);
            switch (method) {
                case 'GET': {
                    // long-polls in progress (GET /v1/_gateway/stats)
                    const lp = url.searchParams.get('live') === 'long-poll';
                    if (lp) this.stats.longPolls++;
                    return this.stateGet(stream, url, req, res, who).finally(() => { if (lp) this.stats.longPolls--; });
                }
                case 'HEAD': return this.stateHead(stream, res, who);
                case 'POST': return this.statePost(stream, req, res, who);
                default: throw new HttpError(405, 'method not allowed on a state stream (GET, HEAD, POST)');
            }
        }
        if ((m = /^\/v1\/stream\/(.+)$/.exec(url.pathname))) {
            const path = decodeURIComponent(m[1]);
            // generic streams live in the gateway's tables, read and written
            // as the gateway: credentials are checked, no role is taken
            if (this.access.required || this.access.hook || header(req, 'authorization') !== undefined) {
                await this.access.identify(req);
            }
            switch (method) {
                case 'PUT': return this.streamCreate(path, req, res);
                case 'GET': return this.streamGet(path, url, req, res);
                case 'HEAD': return this.streamHead(path, res);
                case 'POST': return this.streamAppend(path, req, res);
                case 'DELETE': return this.streamDelete(path, res);
                default: throw new HttpError(405, 'method not allowed');
            }
        }
        if (url.pathname === '/v1/_gateway/stats') {
            res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
            res.end(JSON.stringify({
                wakeup: this.wakeup, statements: this.stats.statements, reads: this.reads.queries,
                stateReads: this.stateReads.queries, waits: this.stats.waits, waitsShared: this.stats.waitsShared,
                longPolls: this.stats.longPolls,
                notifications: this.hub.notifications, sse: this.sse.size,
            }));
            return;
        }
        if (url.pathname === '/health') {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({
                ok: true, queries: this.reads.queries + this.stateReads.queries, notifications: this.hub.notifications,
            }));
            return;
        }
        throw new HttpError(404, 'not found');
    }

    // -----------------------------------------------------------------------
    // /v1/state/<stream>
    // -----------------------------------------------------------------------

    async channelOf(stream) {
        let ch = this.channels.get(stream);
        if (!ch) {
            ch = (await this.pool.query('SELECT state.channel($1) AS c', [stream])).rows[0].c;
            this.channels.set(stream, ch);
        }
        return ch;
    }

    // One page of state.changes() after `since` (shared by identical reads).
    // Returns { events, next, upToDate, snapshot }.
    // minGen: see SharedReads (null: a reader without a registered wait).
    readState(stream, since, minGen = null, role = null) {
        const gen = this.hub.gen(this.channels.get(stream));
        return this.stateReads.run(`${role ?? ''}\0${stream}\0${since}`, gen, async () => {
            try {
                // events as JSON text: passed on as they are, never parsed
                const r = await this.q(role,
                    'SELECT "offset", event::text AS event FROM state.changes($1, $2, $3)', [stream, since, STATE_PAGE]);
                const events = r.rows.map((x) => x.event);
                let next;
                if (events.length > 0) {
                    next = r.rows[r.rows.length - 1].offset;
                } else if (since === '-1' || since === 'now') {
                    next = await this.tailOf(role, stream);
                } else {
                    next = since;
                }
                return { events, next, upToDate: events.length < STATE_PAGE, snapshot: false };
            } catch (err) {
                if (since === '-1' && err.code === '55000' && /no longer retained/.test(err.message)) {
                    // the log was pruned: the snapshot is the stream's beginning
                    const s = await this.q(role, 'SELECT e FROM state.snapshot($1) e', [stream]);
                    const end = s.rows[s.rows.length - 1]?.e?.headers?.offset;
                    const events = s.rows.map((x) => JSON.stringify(x.e));
                    return { events, next: end, upToDate: false, snapshot: true };
                }
                throw pgError(err);
            }
        }, minGen);
    }

    // A waiting read (wakeup 'wait'): the page after `since` as soon as
    // there is one, or an empty page after at most `ms`.  One
    // state.changes(stream, since, page, wait_ms) per (role, stream, since)
    // serves every reader of it, so a commit costs one query however many
    // readers wait at that offset; a page that came is kept for a few
    // seconds for readers arriving late (the events after an offset do not
    // change).  The query waits on the server (on a standby, until replay
    // shows the commit), on a pool of its own (WAIT_POOL_MAX), so readers
    // never hold the connections that writes need.
    waitState(stream, since, role, ms) {
        const key = `${role ?? ''}\0${stream}\0${since}`;
        let e = this.waits.get(key);
        const now = Date.now();
        if (e && e.done && (e.page === null || now - e.at > 5000)) e = null;
        if (!e) {
            this.stats.waits++;
            const waitMs = Math.max(1, Math.min(this.longPollMs, 2147483647));
            const run = (c) => c.query('SELECT "offset", event::text AS event FROM state.changes($1, $2, $3, $4)',
                [stream, since, STATE_PAGE, waitMs]);
            const q = role === null ? this.waitPool.connect().then(async (c) => {
                try {
                    return await run(c);
                } finally {
                    c.release();
                }
            }) : asRole(this.waitPool, role, run);
            const entry = { done: false, at: now, page: null };
            entry.promise = q.then((r) => {
                const events = r.rows.map((x) => x.event);
                const page = {
                    events, next: events.length ? r.rows[r.rows.length - 1].offset : since,
                    upToDate: events.length < STATE_PAGE, snapshot: false,
                };
                entry.page = events.length ? page : null;
                return page;
            }, (err) => { throw pgError(err); }).finally(() => {
                entry.done = true;
                entry.at = Date.now();
                if (!entry.page && this.waits.get(key) === entry) this.waits.delete(key);
            });
            entry.promise.catch(() => {});
            if (this.waits.size > 10000) {
                for (const [k, v] of this.waits) if (v.done) this.waits.delete(k);
            }
            this.waits.set(key, entry);
            e = entry;
        } else {
            this.stats.waitsShared++;
        }
        if (e.done) return e.promise;
        let timer;
        const timeout = new Promise((r) => {
            timer = setTimeout(() => r({ events: [], next: since, upToDate: true, snapshot: false }), ms);
        });
        return Promise.race([e.promise, timeout]).finally(() => clearTimeout(timer));
    }

    async stateHead(stream, res, who) {
        let tail;
        try {
            tail = await this.tailOf(who.role, stream);
        } catch (err) {
            throw pgError(err);
        }
        res.writeHead(200, {
            'content-type': 'application/json', [H.offset]: tail, 'cache-control': 'no-store',
            vary: 'Authorization', etag: etagOf(`state/${who.role ?? ''}/${stream}`, '-1', tail, false),
        });
        res.end();
    }

    parseStateOffset(url) {
        const all = url.searchParams.getAll('offset');
        if (all.length > 1) throw new HttpError(400, 'Multiple offset parameters not allowed');
        const offset = all[0];
        if (offset === '') throw new HttpError(400, 'Empty offset parameter');
        if (offset !== undefined && !/^(-1|now|\d{1,20})$/.test(offset)) {
            throw new HttpError(400, 'Invalid offset format');
        }
        return offset;
    }

    async stateGet(stream, url, req, res, who) {
        const role = who.role;
        const offset = this.parseStateOffset(url);
        const live = url.searchParams.get('live');
        const cursor = url.searchParams.get('cursor') ?? undefined;
        if ((live === 'long-poll' || live === 'sse') && offset === undefined) {
            throw new HttpError(400, `${live === 'sse' ? 'SSE' : 'Long-poll'} requires offset parameter`);
        }
        if (live && live !== 'long-poll' && live !== 'sse') {
            throw new HttpError(400, 'Invalid live parameter');
        }
        let since = offset ?? '-1';
        const deadline = Date.now() + this.longPollMs;
        if (since === 'now') {
            // resolve 'now' once, so a long-poll waits from the tail it saw
            since = (await this.readState(stream, 'now', null, role)).next;
        }
        if (live === 'sse') {
            return this.stateSse(stream, since, cursor, res, role);
        }
        if (offset === 'now' && live !== 'long-poll') {
            res.writeHead(200, {
                'content-type': 'application/json', [H.offset]: since, [H.upToDate]: 'true',
                'cache-control': 'no-store', vary: 'Authorization',
            });
            res.end('[]');
            return;
        }
        // a long-poll that found nothing new before its time ran out
        const endLongPoll = (next) => {
            res.writeHead(204, {
                [H.offset]: next, [H.upToDate]: 'true', [H.cursor]: responseCursor(cursor),
                'cache-control': 'no-store', vary: 'Authorization',
            });
            res.end();
        };
        let page;
        if (live === 'long-poll' && this.wakeup === 'wait' && since !== '-1') {
            // one shared waiting read: it returns at once when there is
            // something after `since`, so no read comes before it
            page = await this.waitState(stream, since, role, this.longPollMs);
            if (page.events.length === 0) {
                endLongPoll(page.next);
                return;
            }
        } else if (live === 'long-poll' && since !== '-1') {
            // register the wait first, then read: readers coming back at
            // the new offset share one read until the next notification
            const channel = await this.channelOf(stream).catch((e) => { throw pgError(e); });
            const sub = await this.hub.subscribe(channel);
            page = await this.readState(stream, since, sub.gen, role).catch((e) => { sub.cancel(); throw e; });
            if (page.events.length === 0 && this.longPollMs > 0) {
                await sub.wait(Math.max(1, deadline - Date.now()));
                page = await this.readState(stream, since, sub.wokeGen, role);
            } else {
                sub.cancel();
            }
        } else {
            page = await this.readState(stream, since, null, role);
        }
        if (live === 'long-poll' && page.events.length === 0 && this.wakeup === 'wait') {
            // offset=-1 of an empty stream: wait from its tail
            since = page.next;
            page = await this.waitState(stream, since, role, this.longPollMs);
            if (page.events.length === 0) {
                endLongPoll(page.next);
                return;
            }
        }
        if (live === 'long-poll' && page.events.length === 0) {
            const channel = await this.channelOf(stream).catch((e) => { throw pgError(e); });
            while (page.events.length === 0) {
                const left = deadline - Date.now();
                if (left <= 0 || this.closing) {
                    endLongPoll(page.next);
                    return;
                }
                const sub = await this.hub.subscribe(channel);
                // re-read after registering the wait (with a query started
                // after it): a commit before the registration is seen here
                page = await this.readState(stream, since, sub.gen, role);
                if (page.events.length > 0) {
                    sub.cancel();
                    break;
                }
                await sub.wait(left);
                page = await this.readState(stream, since, sub.wokeGen, role);
            }
        }
        const headers = {
            'content-type': 'application/json', [H.offset]: page.next,
            etag: etagOf(`state/${role ?? ''}/${stream}`, offset ?? '-1', page.next, false),
            // what a reader sees depends on its role: shared caches keep
            // apart what was read with different credentials
            vary: 'Authorization',
        };
        if (page.upToDate) headers[H.upToDate] = 'true';
        // a role's reads (grants, row-level security) are its own: never
        // in a shared cache
        const scope = who.private ? 'private' : 'public';
        if (live === 'long-poll') {
            headers[H.cursor] = responseCursor(cursor);
            headers['cache-control'] = `${scope}, max-age=20`;
        } else if (page.snapshot) {
            headers['cache-control'] = 'no-store';
        } else {
            // a page that ends before the tail never changes; the last page
            // grows, so it is cached briefly
            headers['cache-control'] = page.upToDate
                ? `${scope}, max-age=1, stale-while-revalidate=60` : `${scope}, max-age=60, stale-while-revalidate=300`;
        }
        if (header(req, 'if-none-match') === headers.etag) {
            res.writeHead(304, { etag: headers.etag, 'cache-control': headers['cache-control'], vary: 'Authorization' });
            res.end();
            return;
        }
        res.writeHead(200, headers);
        res.end(jsonArray(page.events));
    }

    async stateSse(stream, since, cursor, res, role) {
        const channel = this.wakeup === 'listen' ? await this.channelOf(stream).catch((e) => { throw pgError(e); }) : null;
        // a missing stream or an offset out of retention is an HTTP error,
        // not an SSE stream
        let page = await this.readState(stream, since, null, role);
        res.writeHead(200, {
            'content-type': 'text/event-stream', 'cache-control': role === null ? 'no-cache' : 'private, no-cache',
            connection: 'keep-alive', vary: 'Authorization',
        });
        if (this.wakeup === 'wait') return this.stateSseWaiting(stream, page, cursor, res, role);
        this.sse.add(res);
        let open = true;
        let kick = null;
        // One waiter for the connection's life: a notification marks it dirty
        // and records the shared-read counter, so the next read starts after
        // the notification (and may be shared with other readers woken by it).
        let dirty = false, wokeAt = -1;
        const watch = await this.hub.watch(channel, (at, gen) => {
            dirty = true;
            wokeAt = gen;
            kick?.(true);
        });
        // a commit between the first read and the registration: read again
        dirty = true;
        wokeAt = watch.gen;
        res.on('close', () => { open = false; this.sse.delete(res); kick?.(false); });
        let current = since;
        const emit = (p, force) => {
            if (p.events.length > 0) {
                res.write('event: data\n' + sseData(jsonArray(p.events)));
            }
            if (p.events.length > 0 || force) {
                const ctl = { streamNextOffset: p.next, streamCursor: responseCursor(cursor) };
                if (p.upToDate) ctl.upToDate = true;
                res.write('event: control\n' + sseData(JSON.stringify(ctl)));
            }
            current = p.next;
        };
        try {
            emit(page, true);
            while (open && !this.closing) {
                if (!page.upToDate || page.snapshot) {
                    page = await this.readState(stream, current, null, role);
                    emit(page, true);
                    continue;
                }
                if (!dirty) {
                    const woke = await new Promise((resolve) => {
                        kick = resolve;
                        const t = setTimeout(() => resolve(false), this.longPollMs);
                        kick = (v) => { clearTimeout(t); resolve(v); };
                    });
                    kick = null;
                    if (!open || this.closing) break;
                    if (!woke && !dirty) {
                        emit({ events: [], next: current, upToDate: true }, true);   // keep-alive
                        continue;
                    }
                }
                dirty = false;
                page = await this.readState(stream, current, wokeAt, role);
                emit(page, false);
            }
        } catch (err) {
            if (open) {
                const e = pgError(err);
                res.write('event: error\n' + sseData(JSON.stringify({ status: e.status, message: e.message })));
            }
        } finally {
            watch.close();
        }
        this.sse.delete(res);
        res.end();
    }

    // SSE with waiting reads: after the first page, each round is one
    // shared waitState at the offset reached (a keep-alive control event
    // when it times out).
    async stateSseWaiting(stream, page, cursor, res, role) {
        this.sse.add(res);
        let open = true;
        let closed;
        const whenClosed = new Promise((r) => { closed = r; });
        res.on('close', () => { open = false; this.sse.delete(res); closed(null); });
        const emit = (p) => {
            if (p.events.length > 0) res.write('event: data\n' + sseData(jsonArray(p.events)));
            const ctl = { streamNextOffset: p.next, streamCursor: responseCursor(cursor) };
            if (p.upToDate) ctl.upToDate = true;
            res.write('event: control\n' + sseData(JSON.stringify(ctl)));
        };
        try {
            emit(page);
            while (open && !this.closing) {
                const current = page.next;
                if (!page.upToDate || page.snapshot) {
                    page = await this.readState(stream, current, null, role);
                } else {
                    page = await Promise.race([this.waitState(stream, current, role, this.longPollMs), whenClosed]);
                    if (!page) break;
                }
                if (open) emit(page);   // no events: the keep-alive control event
            }
        } catch (err) {
            if (open) {
                const e = pgError(err);
                res.write('event: error\n' + sseData(JSON.stringify({ status: e.status, message: e.message })));
            }
        }
        this.sse.delete(res);
        res.end();
    }

    async statePost(stream, req, res, who) {
        const ct = normalizeType(header(req, 'content-type'));
        if (ct !== 'application/json') {
            throw new HttpError(ct ? 409 : 400, 'a state stream takes application/json (a JSON array of protocol events)');
        }
        const producer = producerHeaders(req);
        if (producer && who.role !== null) {
            // producers are per stream and role: one role cannot fence or
            // advance another's producer of the same id
            producer.id = `${who.role}\u001f${producer.id}`;
        }
        const body = await readBody(req, this.maxBody);
        let events;
        try {
            events = JSON.parse(body.toString('utf8'));
        } catch {
            throw new HttpError(400, 'Invalid JSON');
        }
        if (Array.isArray(events) && events.length === 0) {
            throw new HttpError(400, 'Empty arrays are not allowed');
        }
        const applySql = 'SELECT applied, skipped, last_offset FROM state.apply($1::jsonb, $2)';
        if (!producer && who.role === null) {
            // nothing else in the transaction: one autocommit statement
            let result;
            try {
                result = (await this.pool.query(applySql, [body.toString('utf8'), stream])).rows[0];
            } catch (err) {
                throw pgError(err);
            }
            return this.posted(res, result, null);
        }
        const c = await this.pool.connect();
        let result;
        let broken;
        try {
            await c.query('BEGIN');
            let prow = null;
            if (producer) {
                // lock the producer's row (created if missing) for the
                // batch, and read it, in one statement
                prow = (await c.query(`INSERT INTO ${this.S}.producers AS p (kind, stream, producer_id, epoch, last_seq)
                                       VALUES ('state', $1, $2, -1, -1)
                                       ON CONFLICT (kind, stream, producer_id) DO UPDATE SET epoch = p.epoch
                                       RETURNING epoch, last_seq, last_offset`, [stream, producer.id])).rows[0];
                if (Number(prow.epoch) < 0) prow = null;
                const verdict = checkProducer(prow, producer);
                if (verdict.status !== 'accepted') {
                    await c.query('ROLLBACK');
                    if (verdict.status === 'duplicate') {
                        res.writeHead(204, {
                            [H.pepoch]: String(producer.epoch), [H.pseq]: String(verdict.last),
                            ...(prow.last_offset ? { [H.offset]: prow.last_offset } : {}),
                        });
                        res.end();
                        return;
                    }
                    throw producerRefusal(verdict, producer);
                }
            }
            // the events are applied as the caller's role; the producer's row
            // (the gateway's table) is the gateway's
            if (who.role !== null) {
                try {
                    await c.query(`SET LOCAL ROLE ${pg.escapeIdentifier(who.role)}`);
                } catch (err) {
                    const e = pgError(err);
                    if (e instanceof HttpError) e.status = 403;
                    throw e;
                }
            }
            result = (await c.query(applySql, [body.toString('utf8'), stream])).rows[0];
            if (who.role !== null) await c.query('SET LOCAL ROLE NONE');
            if (producer) {
                await c.query(`UPDATE ${this.S}.producers SET epoch = $3, last_seq = $4, last_offset = $5, updated_at = now()
                                WHERE kind = 'state' AND stream = $1 AND producer_id = $2`,
                [stream, producer.id, producer.epoch, producer.seq, result.last_offset]);
            }
            await c.query('COMMIT');
        } catch (err) {
            // the ROLLBACK ends SET LOCAL ROLE; a connection that cannot
            // roll back is discarded, never handed on with a role
            await c.query('ROLLBACK').catch((e) => { broken = e; });
            throw err instanceof HttpError ? err : pgError(err);
        } finally {
            c.release(broken);
        }
        return this.posted(res, result, producer);
    }

    posted(res, result, producer) {
        const headers = { [H.offset]: result.last_offset, 'content-type': 'application/json' };
        if (producer) {
            headers[H.pepoch] = String(producer.epoch);
            headers[H.pseq] = String(producer.seq);
        }
        res.writeHead(200, headers);
        res.end(JSON.stringify({ applied: Number(result.applied), skipped: Number(result.skipped), last_offset: result.last_offset }));
    }

    // -----------------------------------------------------------------------
    // /v1/stream/<path>: generic streams in GATEWAY_SCHEMA
    // -----------------------------------------------------------------------

    // The stream's row, or null when absent or expired (an expired stream
    // is removed on sight, see removeStream).  A deleted stream that forks
    // still read is 410, or its row (deleted = true) with allowDeleted.
    // lock: false, true (FOR UPDATE) or 'share' (FOR SHARE).
    async getStream(q, path, lock = false, allowDeleted = false) {
        const r = await q.query(`SELECT *, (expires_at IS NOT NULL AND now() >= expires_at::timestamptz)
                                         OR (ttl_seconds IS NOT NULL AND now() >= accessed_at + ttl_seconds * interval '1 second') AS expired
                                   FROM ${this.S}.streams WHERE path = $1
                                   ${lock === 'share' ? 'FOR SHARE' : lock ? 'FOR UPDATE' : ''}`, [path]);
        const row = r.rows[0];
        if (!row) return null;
        if (row.expired && !row.deleted) {
            if ((await this.removeStream(q, path)) === 'hard') return null;
            row.deleted = true;
        }
        if (row.deleted && !allowDeleted) throw new HttpError(410, 'Stream is deleted');
        return row;
    }

    // Deletes a stream: only marks it deleted while forks still read its
    // messages ('soft'), else removes it ('hard') and then its source too if
    // that was deleted and this was its last fork (and so on up the chain).
    async removeStream(q, path) {
        const S = this.S;
        await q.query(`DELETE FROM ${S}.producers WHERE kind = 'stream' AND stream = $1`, [path]);
        const forks = await q.query(`SELECT 1 FROM ${S}.streams WHERE forked_from = $1 LIMIT 1`, [path]);
        if (forks.rowCount > 0) {
            await q.query(`UPDATE ${S}.streams SET deleted = true WHERE path = $1`, [path]);
            return 'soft';
        }
        const r = await q.query(`DELETE FROM ${S}.streams WHERE path = $1 RETURNING forked_from`, [path]);
        const parent = r.rows[0]?.forked_from;
        if (parent) {
            // locked: of two last forks deleted at once, the later sees the
            // earlier gone and removes the source
            const p = await q.query(`SELECT deleted FROM ${S}.streams WHERE path = $1 FOR UPDATE`, [parent]);
            if (p.rows[0]?.deleted) await this.removeStream(q, parent);
        }
        return 'hard';
    }

    async touch(path) {
        await this.pool.query(`UPDATE ${this.S}.streams SET accessed_at = now() WHERE path = $1 AND ttl_seconds IS NOT NULL`, [path]);
    }

    async sweepExpired() {
        const r = await this.pool.query(`SELECT path FROM ${this.S}.streams
                                WHERE NOT deleted
                                  AND ((expires_at IS NOT NULL AND now() >= expires_at::timestamptz)
                                   OR (ttl_seconds IS NOT NULL AND now() >= accessed_at + ttl_seconds * interval '1 second'))`);
        for (const { path } of r.rows) {
            await this.tx((c) => this.getStream(c, path, true, true));
        }
    }

    async tx(fn) {
        const c = await this.pool.connect();
        try {
            await c.query('BEGIN');
            const r = await fn(c);
            await c.query('COMMIT');
            return r;
        } catch (err) {
            await c.query('ROLLBACK').catch(() => {});
            throw err;
        } finally {
            c.release();
        }
    }

    // Appends one message (already validated) inside transaction c; returns
    // its offset, or null for an empty JSON array at creation.
    async appendMessage(c, row, data, initial) {
        if (isJsonType(row.content_type)) {
            let parsed;
            try {
                parsed = JSON.parse(data.toString('utf8'));
            } catch {
                throw new HttpError(400, 'Invalid JSON');
            }
            if (Array.isArray(parsed)) {
                if (parsed.length === 0) {
                    if (initial) return null;
                    throw new HttpError(400, 'Empty arrays are not allowed');
                }
                data = Buffer.from(parsed.map((v) => JSON.stringify(v)).join(',') + ',');
            } else {
                data = Buffer.from(JSON.stringify(parsed) + ',');
            }
        }
        const [rs, bo] = row.tail.split('_').map(Number);
        const next = `${String(rs).padStart(16, '0')}_${String(bo + 5 + data.length).padStart(16, '0')}`;
        await c.query(`INSERT INTO ${this.S}.messages (path, "offset", data) VALUES ($1, $2, $3)`, [row.path, next, data]);
        await c.query(`UPDATE ${this.S}.streams SET tail = $2, accessed_at = now() WHERE path = $1`, [row.path, next]);
        row.tail = next;
        return next;
    }

    notifyStream(c, path) {
        return c.query('SELECT pg_notify($1, $2)', [GENERIC_CHANNEL, path.length > 7000 ? '' : path]);
    }

    // Stream-Forked-From / Stream-Fork-Offset / Stream-Fork-Sub-Offset of a
    // PUT: null for a plain creation, else { from, offset, sub }.
    forkHeaders(req) {
        const fromH = header(req, 'Stream-Forked-From');
        const offH = header(req, 'Stream-Fork-Offset');
        const subH = header(req, 'Stream-Fork-Sub-Offset');
        if (fromH === undefined) {
            if (offH !== undefined || subH !== undefined) {
                throw new HttpError(400, 'Stream-Fork-Offset and Stream-Fork-Sub-Offset require Stream-Forked-From');
            }
            return null;
        }
        let from = fromH.trim();
        try {
            from = decodeURIComponent(from.replace(/^https?:\/\/[^/]+/, '').split('?')[0]);
        } catch {
            throw new HttpError(400, 'Invalid Stream-Forked-From');
        }
        from = from.replace(/^\/v1\/stream\//, '');
        if (from === '') throw new HttpError(400, 'Invalid Stream-Forked-From');
        let offset = null;
        if (offH !== undefined) {
            if (!/^\d+_\d+$/.test(offH)) throw new HttpError(400, 'Invalid Stream-Fork-Offset');
            const [a, b] = offH.split('_');
            if (a.length > 16 || b.length > 16) throw new HttpError(400, 'Invalid Stream-Fork-Offset');
            offset = `${a.padStart(16, '0')}_${b.padStart(16, '0')}`;
        }
        if (subH !== undefined && (!/^(0|[1-9]\d*)$/.test(subH) || !Number.isSafeInteger(Number(subH)))) {
            throw new HttpError(400, 'Invalid Stream-Fork-Sub-Offset');
        }
        return { from, offset, sub: subH === undefined ? 0 : Number(subH) };
    }

    // The fork's inherited prefix of the source's message after `offset`:
    // its first `sub` bytes (or `sub` JSON values), as a body to append.
    async forkSlice(c, src, offset, sub) {
        const [next] = await this.chainMessages(c, src, offset, 1);
        if (!next) throw new HttpError(400, 'Stream-Fork-Sub-Offset is past the end of the source stream');
        if (isJsonType(src.content_type)) {
            const values = JSON.parse(`[${next.data.toString('utf8').replace(/,\s*$/, '')}]`);
            if (sub > values.length) throw new HttpError(400, 'Stream-Fork-Sub-Offset is past the end of the message');
            return Buffer.from(JSON.stringify(values.slice(0, sub)));
        }
        if (sub > next.data.length) throw new HttpError(400, 'Stream-Fork-Sub-Offset is past the end of the message');
        return next.data.subarray(0, sub);
    }

    async streamCreate(path, req, res) {
        const fork = this.forkHeaders(req);
        let ct = header(req, 'content-type');
        const ctGiven = !!(ct && ct.trim() && /^[\w-]+\/[\w-]+/.test(ct));
        if (!ctGiven) ct = 'application/octet-stream';
        const ttlH = header(req, H.ttl), expH = header(req, H.expiresAt);
        const closed = header(req, H.closed) === 'true';
        if (ttlH && expH) throw new HttpError(400, 'Cannot specify both Stream-TTL and Stream-Expires-At');
        if (ttlH !== undefined && !/^(0|[1-9]\d*)$/.test(ttlH)) throw new HttpError(400, 'Invalid Stream-TTL value');
        if (expH !== undefined && Number.isNaN(new Date(expH).getTime())) {
            throw new HttpError(400, 'Invalid Stream-Expires-At timestamp');
        }
        let ttl = ttlH !== undefined ? Number(ttlH) : null;
        let expires = expH ?? null;
        const body = await readBody(req, this.maxBody);
        const out = await this.tx(async (c) => {
            await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`ds_gateway:${path}`]);
            // a fork's source: locked (shared) so it is not deleted under us
            const src = fork && fork.from !== path ? await this.getStream(c, fork.from, 'share', true) : null;
            let forkOffset = null;
            if (fork && src) {
                // unspecified content type and expiry are the source's
                if (!ctGiven) ct = src.content_type;
                if (ttlH === undefined && expH === undefined) {
                    ttl = src.ttl_seconds === null ? null : Number(src.ttl_seconds);
                    expires = src.expires_at;
                }
                forkOffset = fork.offset ?? src.tail;
            }
            const existing = await this.getStream(c, path, true, true);
            if (existing) {
                if (existing.deleted) throw new HttpError(409, 'Stream was deleted and is still read by forks');
                const same = normalizeType(existing.content_type) === normalizeType(ct)
                    && (existing.ttl_seconds === null ? null : Number(existing.ttl_seconds)) === ttl
                    && (existing.expires_at ?? null) === (expires ?? null)
                    && existing.closed === closed
                    && (!fork || (existing.forked_from === fork.from
                        && (fork.offset === null || existing.fork_offset === fork.offset)
                        && Number(existing.fork_sub_offset) === fork.sub));
                if (!same) throw new HttpError(409, 'Stream already exists with different configuration');
                return { row: existing, isNew: false };
            }
            let slice = null;
            if (fork) {
                if (!src) throw new HttpError(404, 'Source stream not found');
                if (src.deleted) throw new HttpError(409, 'Source stream is deleted');
                if (normalizeType(ct) !== normalizeType(src.content_type)) {
                    throw new HttpError(409, 'Content-Type does not match the source stream');
                }
                if (forkOffset > src.tail) throw new HttpError(400, 'Stream-Fork-Offset is beyond the source stream');
                if (fork.sub > 0) slice = await this.forkSlice(c, src, forkOffset, fork.sub);
            }
            const row = (await c.query(`INSERT INTO ${this.S}.streams
                                            (path, content_type, ttl_seconds, expires_at, forked_from, fork_offset, fork_sub_offset, tail)
                                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
            [path, ct, ttl, expires, fork ? fork.from : null, forkOffset, fork ? fork.sub : 0, forkOffset ?? ZERO])).rows[0];
            if (slice && slice.length > 0) {
                // the part of the source's next message the fork inherits is
                // the fork's own first message (its producers start afresh)
                await this.appendMessage(c, row, slice, true);
            }
            if (body.length > 0) {
                await this.appendMessage(c, row, body, true);
            }
            if (closed) {
                await c.query(`UPDATE ${this.S}.streams SET closed = true WHERE path = $1`, [path]);
                row.closed = true;
            }
            await this.notifyStream(c, path);
            return { row, isNew: true };
        });
        const headers = { 'content-type': out.row.content_type, [H.offset]: out.row.tail };
        if (out.isNew) headers.location = `http://${req.headers.host}/v1/stream/${encodeURIComponent(path)}`;
        if (out.row.closed) headers[H.closed] = 'true';
        res.writeHead(out.isNew ? 201 : 200, headers);
        res.end();
    }

    async streamHead(path, res) {
        const row = await this.getStream(this.pool, path);
        if (!row) {
            res.writeHead(404, { 'content-type': 'text/plain' });
            res.end();
            return;
        }
        const headers = {
            [H.offset]: row.tail, 'cache-control': 'no-store', 'content-type': row.content_type,
            etag: etagOf(path, '-1', row.tail, row.closed),
        };
        if (row.closed) headers[H.closed] = 'true';
        if (row.ttl_seconds !== null) headers[H.ttl] = String(row.ttl_seconds);
        if (row.expires_at) headers[H.expiresAt] = row.expires_at;
        res.writeHead(200, headers);
        res.end();
    }

    async streamDelete(path, res) {
        const r = await this.tx(async (c) => {
            const row = await this.getStream(c, path, true, true);
            if (!row) return false;
            if (row.deleted) throw new HttpError(410, 'Stream is deleted');
            await this.removeStream(c, path);
            await this.notifyStream(c, path);
            return true;
        });
        if (!r) throw new HttpError(404, 'Stream not found');
        res.writeHead(204);
        res.end();
    }

    async streamAppend(path, req, res) {
        const ct = header(req, 'content-type');
        const seq = header(req, H.seq);
        const close = header(req, H.closed) === 'true';
        const producer = producerHeaders(req);
        const body = await readBody(req, this.maxBody);
        if (body.length === 0 && !close) throw new HttpError(400, 'Empty body');
        if (body.length > 0 && !ct) throw new HttpError(400, 'Content-Type header is required');
        const out = await this.tx(async (c) => {
            const row = await this.getStream(c, path, true);
            if (!row) throw new HttpError(404, 'Stream not found');
            let prow = null;
            if (producer) {
                prow = (await c.query(`SELECT epoch, last_seq FROM ${this.S}.producers
                                        WHERE kind = 'stream' AND stream = $1 AND producer_id = $2 FOR UPDATE`,
                [path, producer.id])).rows[0] || null;
            }
            await c.query(`UPDATE ${this.S}.streams SET accessed_at = now() WHERE path = $1`, [path]);
            if (row.closed && body.length === 0 && close && !producer) {
                return { row, closedNow: true };   // closing a closed stream is idempotent
            }
            if (row.closed) {
                const by = row.closed_by;
                if (producer && by && by.id === producer.id && by.epoch === producer.epoch && by.seq === producer.seq) {
                    return { dup: true, last: producer.seq, row, closedNow: true };
                }
                if (producer && prow) {
                    const v = checkProducer(prow, producer);
                    if (v.status === 'duplicate') return { dup: true, last: v.last, row, closedNow: true };
                }
                throw new HttpError(409, 'Stream is closed', { [H.closed]: 'true', [H.offset]: row.tail });
            }
            if (body.length > 0 && normalizeType(ct) !== normalizeType(row.content_type)) {
                throw new HttpError(409, 'Content-type mismatch');
            }
            if (producer) {
                const v = checkProducer(prow, producer);
                if (v.status === 'duplicate') return { dup: true, last: v.last, row };
                const refusal = producerRefusal(v, producer);
                if (refusal) throw refusal;
            }
            if (seq !== undefined) {
                if (row.last_stream_seq !== null && seq <= row.last_stream_seq) {
                    throw new HttpError(409, 'Sequence conflict');
                }
                await c.query(`UPDATE ${this.S}.streams SET last_stream_seq = $2 WHERE path = $1`, [path, seq]);
            }
            if (body.length > 0) {
                await this.appendMessage(c, row, body, false);
            }
            if (producer) {
                await c.query(`INSERT INTO ${this.S}.producers (kind, stream, producer_id, epoch, last_seq, last_offset)
                               VALUES ('stream', $1, $2, $3, $4, $5)
                               ON CONFLICT (kind, stream, producer_id)
                               DO UPDATE SET epoch = $3, last_seq = $4, last_offset = $5, updated_at = now()`,
                [path, producer.id, producer.epoch, producer.seq, row.tail]);
            }
            if (close) {
                await c.query(`UPDATE ${this.S}.streams SET closed = true, closed_by = $2 WHERE path = $1`,
                    [path, producer ? JSON.stringify(producer) : null]);
            }
            await this.notifyStream(c, path);
            return { row, closedNow: close };
        });
        const headers = { [H.offset]: out.row.tail };
        if (out.closedNow) headers[H.closed] = 'true';
        if (out.dup) {
            res.writeHead(204, { ...headers, [H.pepoch]: String(producer.epoch), [H.pseq]: String(out.last) });
            res.end();
            return;
        }
        if (producer) {
            headers[H.pepoch] = String(producer.epoch);
            headers[H.pseq] = String(producer.seq);
        }
        res.writeHead(producer && body.length > 0 ? 200 : 204, headers);
        res.end();
    }

    // Messages after `offset` (padded), shared by identical reads.  A fork
    // (row.forked_from set) reads through its chain of sources.
    readMessages(row, offset, after = -1) {
        return this.reads.run(`stream\0${row.path}\0${offset}`, async () => {
            const messages = await this.chainMessages(this.pool, row, offset, GENERIC_PAGE);
            return { messages, upToDate: messages.length < GENERIC_PAGE };
        }, after);
    }

    // Up to `limit` messages of the stream after `offset`: its own, and for
    // a fork those of each source in (its fork_offset, the child's
    // fork_offset] -- the ranges are disjoint and ascend down the chain.
    async chainMessages(q, row, offset, limit) {
        if (!row.forked_from) {
            return (await q.query(
                `SELECT "offset", data FROM ${this.S}.messages WHERE path = $1 AND "offset" > $2
                  ORDER BY "offset" LIMIT ${Number(limit)}`, [row.path, offset])).rows;
        }
        return (await q.query(
            `WITH RECURSIVE chain(path, forked_from, lower, upper, depth) AS (
                 SELECT path, forked_from, fork_offset, NULL::text, 0 FROM ${this.S}.streams WHERE path = $1
               UNION ALL
                 SELECT s.path, s.forked_from, s.fork_offset, LEAST(c.upper, c.lower), c.depth + 1
                   FROM chain c JOIN ${this.S}.streams s ON s.path = c.forked_from
                  WHERE c.depth < 1000)
             SELECT m."offset", m.data FROM chain c JOIN ${this.S}.messages m ON m.path = c.path
              WHERE m."offset" > $2 AND (c.lower IS NULL OR m."offset" > c.lower)
                AND (c.upper IS NULL OR m."offset" <= c.upper)
              ORDER BY m."offset" LIMIT ${Number(limit)}`, [row.path, offset])).rows;
    }

    formatBody(row, messages) {
        if (isJsonType(row.content_type)) {
            const parts = messages.map((m) => m.data.toString('utf8').replace(/,\s*$/, '')).filter((s) => s !== '');
            return Buffer.from(`[${parts.join(',')}]`);
        }
        return Buffer.concat(messages.map((m) => m.data));
    }

    parseStreamOffset(url) {
        const all = url.searchParams.getAll('offset');
        if (all.length > 1) throw new HttpError(400, 'Multiple offset parameters not allowed');
        const offset = all[0];
        if (offset === '') throw new HttpError(400, 'Empty offset parameter');
        if (offset !== undefined && !/^(-1|now|\d+_\d+)$/.test(offset)) throw new HttpError(400, 'Invalid offset format');
        if (offset && /_/.test(offset)) {
            const [a, b] = offset.split('_');
            return `${a.padStart(16, '0')}_${b.padStart(16, '0')}`;
        }
        return offset;
    }

    waitStream(path) {
        return this.hub.subscribe(GENERIC_CHANNEL, (payload) => payload === path || payload === '');
    }

    async streamGet(path, url, req, res) {
        let row = await this.getStream(this.pool, path);
        if (!row) throw new HttpError(404, 'Stream not found');
        const offset = this.parseStreamOffset(url);
        const live = url.searchParams.get('live');
        const cursor = url.searchParams.get('cursor') ?? undefined;
        if ((live === 'long-poll' || live === 'sse') && !offset) {
            throw new HttpError(400, `${live === 'sse' ? 'SSE' : 'Long-poll'} requires offset parameter`);
        }
        await this.touch(path);
        if (live === 'sse') {
            return this.streamSse(path, row, offset === 'now' ? row.tail : offset, cursor, res);
        }
        const effective = offset === 'now' ? row.tail : offset;
        if (offset === 'now' && live !== 'long-poll') {
            const h = { [H.offset]: row.tail, [H.upToDate]: 'true', 'cache-control': 'no-store', 'content-type': row.content_type };
            if (row.closed) h[H.closed] = 'true';
            res.writeHead(200, h);
            res.end(isJsonType(row.content_type) ? '[]' : '');
            return;
        }
        const from = !effective || effective === '-1' ? '' : effective;
        let { messages, upToDate } = await this.readMessages(row, from);
        const caughtUp = (effective && effective === row.tail) || offset === 'now';
        if (live === 'long-poll' && caughtUp && messages.length === 0) {
            if (row.closed) {
                res.writeHead(204, { [H.offset]: row.tail, [H.upToDate]: 'true', [H.closed]: 'true' });
                res.end();
                return;
            }
            const deadline = Date.now() + this.longPollMs;
            for (;;) {
                const sub = await this.waitStream(path);
                row = await this.getStream(this.pool, path).catch((e) => { sub.cancel(); throw e; });
                if (!row) {
                    sub.cancel();
                    throw new HttpError(404, 'Stream not found');
                }
                ({ messages, upToDate } = await this.readMessages(row, from, sub.after));
                if (messages.length > 0 || row.closed) {
                    sub.cancel();
                    break;
                }
                const left = deadline - Date.now();
                if (left <= 0 || this.closing || !(await sub.wait(left))) {
                    row = await this.getStream(this.pool, path).catch(() => null);
                    const h = { [H.offset]: effective, [H.upToDate]: 'true', [H.cursor]: responseCursor(cursor) };
                    if (row?.closed) h[H.closed] = 'true';
                    res.writeHead(204, h);
                    res.end();
                    return;
                }
            }
            if (messages.length === 0 && row.closed) {
                res.writeHead(204, {
                    [H.offset]: effective, [H.upToDate]: 'true', [H.cursor]: responseCursor(cursor), [H.closed]: 'true',
                });
                res.end();
                return;
            }
            upToDate = true;
        }
        const current = (await this.getStream(this.pool, path).catch(() => null)) || row;
        const next = messages.length ? messages[messages.length - 1].offset : current.tail;
        const headers = { 'content-type': row.content_type, [H.offset]: next };
        if (live === 'long-poll') headers[H.cursor] = responseCursor(cursor);
        if (upToDate && next === current.tail) headers[H.upToDate] = 'true';
        const atTailClosed = current.closed && next === current.tail && upToDate;
        if (atTailClosed) headers[H.closed] = 'true';
        headers.etag = etagOf(path, offset ?? '-1', next, atTailClosed);
        if (header(req, 'if-none-match') === headers.etag) {
            res.writeHead(304, { etag: headers.etag });
            res.end();
            return;
        }
        res.writeHead(200, headers);
        res.end(this.formatBody(row, messages));
    }

    async streamSse(path, row, start, cursor, res) {
        const ct = normalizeType(row.content_type);
        const base64 = !(ct.startsWith('text/') || ct === 'application/json');
        const h = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' };
        if (base64) h['Stream-SSE-Data-Encoding'] = 'base64';
        res.writeHead(200, h);
        this.sse.add(res);
        let open = true;
        res.on('close', () => { open = false; this.sse.delete(res); });
        let current = start === '-1' ? '' : start;
        const control = (obj) => res.write('event: control\n' + sseData(JSON.stringify(obj)));
        try {
            while (open && !this.closing) {
                const sub = await this.waitStream(path);
                const cur = await this.getStream(this.pool, path).catch(() => null);
                if (!cur) {
                    sub.cancel();
                    break;
                }
                const { messages, upToDate } = await this.readMessages(row, current, sub.after);
                // every data event is followed by its control event (its offset)
                messages.forEach((m, i) => {
                    let payload;
                    if (base64) payload = m.data.toString('base64');
                    else if (ct === 'application/json') payload = this.formatBody(row, [m]).toString('utf8');
                    else payload = m.data.toString('utf8');
                    res.write('event: data\n' + sseData(payload));
                    if (i < messages.length - 1) {
                        control({ streamNextOffset: m.offset, streamCursor: responseCursor(cursor) });
                    }
                });
                const ctlOffset = messages.length ? messages[messages.length - 1].offset : cur.tail;
                current = ctlOffset;
                if (cur.closed && ctlOffset === cur.tail) {
                    sub.cancel();
                    control({ streamNextOffset: ctlOffset, streamClosed: true });
                    break;
                }
                const ctl = { streamNextOffset: ctlOffset, streamCursor: responseCursor(cursor) };
                if (upToDate && ctlOffset === cur.tail) ctl.upToDate = true;
                control(ctl);
                // up to date: wait (the subscription was taken before the
                // read, so an append since wakes it); reading again at once
                // would only repeat the control event just sent
                if (!upToDate) {
                    sub.cancel();
                    continue;
                }
                const woke = await sub.wait(this.longPollMs);
                if (!woke && open && !this.closing) {
                    const again = await this.getStream(this.pool, path).catch(() => null);
                    if (!again) break;
                    if (!again.closed) {
                        control({ streamNextOffset: current, streamCursor: responseCursor(cursor), upToDate: true });
                    }
                }
            }
        } catch (err) {
            console.error('gateway: sse', err);
        }
        this.sse.delete(res);
        res.end();
    }
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
    const gw = new Gateway();
    const port = await gw.start(Number(process.env.PORT || 4437));
    console.log(`durable_state gateway listening on http://localhost:${port}`);
    const stop = () => gw.stop().then(() => process.exit(0), () => process.exit(1));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}
