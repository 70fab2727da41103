// test/t/gateway_access.js -- the gateway's access control: a request's
// identity becomes a Postgres role (SET LOCAL ROLE per request), so grants
// and row-level security hold over HTTP.
//
// Its own database (ds_gateway_acc) with a collection under row-level
// security (a row per tenant, the tenant being the role's name), roles
// (two tenants, one with a hostile name, one without SELECT), bearer tokens
// in ds_gateway.tokens (hashes), and gateways started with the access
// settings: optional (default), GATEWAY_ANON_ROLE, GATEWAY_AUTH=required
// and GATEWAY_AUTH_MODULE.  Checks each reader's filtered feed (catch-up,
// long-poll, SSE, readers of different roles at one offset), writes under
// the role, 401/403 with the SQLSTATE, private caching with Vary, and that a
// pooled connection never keeps a role (PG_POOL_MAX=1).  Prints
// `N passed, M failed`.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const pg = require(path.join(__dirname, '../node/node_modules/pg'));
const { check, note, summary, counts } = require(path.join(__dirname, '../node/tap.js'));
const { sleep, startGateway, sseRead, ev } = require(path.join(__dirname, '../node/gateway_util.js'));

const DB = 'ds_gateway_acc';
const EVIL = 'gwacc_evil"; DROP TABLE canary; --';
const ROLES = ['gwacc_alice', 'gwacc_bob', 'gwacc_nobody', EVIL];
const TOKENS = { alice: 'gwacc_alice', bob: 'gwacc_bob', nobody: 'gwacc_nobody', evil: EVIL, ghost: 'gwacc_no_such_role' };

let gw = null;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ds-gwacc-'));

const bearer = (who) => (who ? { authorization: `Bearer tok-${who}` } : {});
const get = (p, who, headers = {}) => fetch(gw.url + p, { headers: { ...bearer(who), ...headers } });
const post = (p, who, body) => fetch(gw.url + p, {
    method: 'POST', headers: { 'content-type': 'application/json', ...bearer(who) }, body: JSON.stringify(body),
});
const note_ = (key, tenant, op = 'insert') => ev('note', key, { tenant, body: key }, op);
const keys = (events) => events.filter((e) => e.type === 'note').map((e) => e.key).sort().join(',');

async function restart(env) {
    if (gw) await gw.stop();
    gw = await startGateway({ PGDATABASE: DB, LONG_POLL_TIMEOUT_MS: '1500', PG_POOL_MAX: '1', ...env });
}

async function main() {
    const admin = new pg.Client({ database: process.env.PGDATABASE });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    for (const r of ROLES) await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(r)}`);
    await admin.query(`CREATE DATABASE ${DB}`);
    await admin.end();
    const db = new pg.Client({ database: DB });
    await db.connect();
    await db.query('CREATE EXTENSION durable_state');
    for (const r of ROLES) await db.query(`CREATE ROLE ${pg.escapeIdentifier(r)} IN ROLE state_writer`);
    await db.query(`CREATE TABLE canary (x int);
        CREATE TABLE notes (id text PRIMARY KEY, tenant text NOT NULL, body text);
        SELECT state.create_collection('notes', 'note', table_name => 'notes', stream => 'acc');
        GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO gwacc_alice, gwacc_bob, ${pg.escapeIdentifier(EVIL)};
        ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
        CREATE POLICY own_rows ON notes USING (tenant = current_user)`);
    const apply = (events) => db.query(`SELECT last_offset FROM state.apply($1::jsonb, 'acc')`, [JSON.stringify(events)]);
    await apply([note_('a1', 'gwacc_alice'), note_('b1', 'gwacc_bob'), note_('e1', EVIL)]);

    await restart({});
    note(`gateway at ${gw.url}`);
    for (const [who, role] of Object.entries(TOKENS)) {
        await db.query(`INSERT INTO ds_gateway.tokens (token_hash, role) VALUES (sha256(convert_to($1, 'UTF8')), $2)`,
            [`tok-${who}`, role]);
    }
    const stored = (await db.query('SELECT count(*)::int AS n FROM ds_gateway.tokens WHERE role = $1 AND note IS NULL', ['gwacc_alice'])).rows[0].n;
    const plain = (await db.query(`SELECT count(*)::int AS n FROM ds_gateway.tokens WHERE token_hash = convert_to('tok-alice', 'UTF8')`)).rows[0].n;
    check(stored === 1 && plain === 0, 'ds_gateway.tokens holds hashes of the tokens, not the tokens');

    // ---- catch-up reads: each role its filtered feed
    let r = await get('/v1/state/acc?offset=-1', 'alice');
    let body = await r.json();
    check(r.status === 200 && keys(body) === 'a1', "alice's catch-up read: only her row", `${r.status} ${JSON.stringify(body)}`);
    check(/^private/.test(r.headers.get('cache-control') || '') && /authorization/i.test(r.headers.get('vary') || ''),
        'a read under a role: Cache-Control private, Vary: Authorization', `${r.headers.get('cache-control')} / ${r.headers.get('vary')}`);
    const aliceTag = r.headers.get('etag');
    r = await get('/v1/state/acc?offset=-1', 'bob');
    body = await r.json();
    check(r.status === 200 && keys(body) === 'b1', "bob's catch-up read: only his row", JSON.stringify(body));
    check(r.headers.get('etag') !== aliceTag, 'ETags differ between roles reading the same URL');
    r = await get('/v1/state/acc?offset=-1', 'bob', { 'if-none-match': aliceTag });
    check(r.status === 200, "alice's ETag is no 304 for bob");
    r = await get('/v1/state/acc?offset=-1');
    body = await r.json();
    check(r.status === 200 && keys(body) === 'a1,b1,e1' && /^public/.test(r.headers.get('cache-control') || '')
        && /authorization/i.test(r.headers.get('vary') || ''),
    'no credentials (optional auth, no GATEWAY_ANON_ROLE): the gateway role reads all, public with Vary', JSON.stringify(body));
    r = await get('/v1/state/acc?offset=-1', 'evil');
    body = await r.json();
    const canary = (await db.query("SELECT to_regclass('canary') IS NOT NULL AS ok")).rows[0].ok;
    check(r.status === 200 && keys(body) === 'e1' && canary, 'a hostile role name is quoted: its own row, nothing dropped',
        `${r.status} ${JSON.stringify(body)}`);

    // ---- 401 and 403
    r = await get('/v1/state/acc?offset=-1', 'unknown');
    body = await r.json();
    check(r.status === 401 && /bearer/i.test(r.headers.get('www-authenticate') || '') && body.error.message,
        'unknown token: 401 with WWW-Authenticate', `${r.status} ${JSON.stringify(body)}`);
    r = await get('/v1/state/acc?offset=-1', null, { authorization: 'Basic Zm9vOmJhcg==' });
    check(r.status === 401, 'a non-bearer Authorization: 401');
    r = await get('/v1/state/acc?offset=-1', 'nobody');
    body = await r.json();
    check(r.status === 403 && body.error.sqlstate === '42501', 'a role without SELECT on the collection: 403 with SQLSTATE 42501',
        `${r.status} ${JSON.stringify(body)}`);
    r = await get('/v1/state/acc?offset=-1', 'ghost');
    body = await r.json();
    check(r.status === 403 && body.error.sqlstate, 'a token mapped to a missing role: 403', `${r.status} ${JSON.stringify(body)}`);

    // ---- HEAD and offset=now as a filtered role
    const tail = (await db.query("SELECT state.tail('acc') AS t")).rows[0].t;
    r = await fetch(gw.url + '/v1/state/acc', { method: 'HEAD', headers: bearer('alice') });
    check(r.status === 200 && r.headers.get('stream-next-offset') === tail, 'HEAD as a filtered role: the tail',
        `${r.status} ${r.headers.get('stream-next-offset')}`);
    r = await get('/v1/state/acc?offset=now', 'alice');
    check(r.status === 200 && (await r.text()) === '[]' && r.headers.get('stream-next-offset') === tail, 'offset=now as a filtered role');
    r = await fetch(gw.url + '/v1/state/acc', { method: 'HEAD', headers: bearer('nobody') });
    check(r.status === 403, 'HEAD as a role without SELECT: 403');

    // ---- writes as the role: own rows pass, others' are refused (RLS)
    r = await post('/v1/state/acc', 'alice', [note_('a2', 'gwacc_alice')]);
    check(r.status === 200, 'alice POSTs her own row: 200');
    r = await post('/v1/state/acc', 'alice', [note_('x1', 'gwacc_bob')]);
    body = await r.json();
    check(r.status === 403 && body.error.sqlstate === '42501', "alice POSTs a row into bob's tenant: 403, 42501",
        `${r.status} ${JSON.stringify(body)}`);
    // one pooled connection (PG_POOL_MAX=1): after the failed write as alice
    // an anonymous read is the gateway's role again
    r = await get('/v1/state/acc?offset=-1');
    body = await r.json();
    check(r.status === 200 && keys(body) === 'a1,a2,b1,e1', 'after a refused write under a role, the pooled connection has no role left',
        JSON.stringify(body));
    r = await post('/v1/state/acc', 'nobody', [note_('n1', 'gwacc_nobody')]);
    check(r.status === 403, 'a role without INSERT: POST 403');
    r = await post('/v1/state/acc', null, [note_('o1', 'gwacc_bob')]);
    check(r.status === 200, 'no credentials: the gateway role writes any tenant');
    const P = { 'producer-id': 'p', 'producer-epoch': '0', 'producer-seq': '0' };
    r = await fetch(gw.url + '/v1/state/acc', { method: 'POST', headers: { 'content-type': 'application/json', ...bearer('alice'), ...P },
        body: JSON.stringify([note_('a3', 'gwacc_alice')]) });
    const r2 = await fetch(gw.url + '/v1/state/acc', { method: 'POST', headers: { 'content-type': 'application/json', ...bearer('bob'), ...P },
        body: JSON.stringify([note_('b3', 'gwacc_bob')]) });
    check(r.status === 200 && r2.status === 200, "producers are per role: bob's producer 'p' seq 0 is not alice's duplicate");

    // ---- live reads: readers of two roles at one offset share no read
    let t0 = (await db.query("SELECT state.tail('acc') AS t")).rows[0].t;
    const la = get(`/v1/state/acc?offset=${t0}&live=long-poll`, 'alice');
    const lb = get(`/v1/state/acc?offset=${t0}&live=long-poll`, 'bob');
    await sleep(300);
    await apply([note_('b4', 'gwacc_bob')]);
    await sleep(100);
    await apply([note_('a4', 'gwacc_alice')]);
    const [ra, rb] = await Promise.all([la, lb]);
    const ba = ra.status === 200 ? await ra.json() : [];
    const bb = rb.status === 200 ? await rb.json() : [];
    check(ra.status === 200 && keys(ba) === 'a4', "alice's long-poll: woken, only her row (not bob's earlier commit)",
        `${ra.status} ${JSON.stringify(ba)}`);
    check(rb.status === 200 && keys(bb) === 'b4', "bob's long-poll at the same offset: only his row", `${rb.status} ${JSON.stringify(bb)}`);
    check(/^private/.test(ra.headers.get('cache-control') || ''), 'a long-poll under a role: private');
    t0 = (await db.query("SELECT state.tail('acc') AS t")).rows[0].t;
    const sa = await get(`/v1/state/acc?offset=${t0}&live=sse`, 'alice');
    check(sa.status === 200 && /private/.test(sa.headers.get('cache-control') || ''), 'SSE under a role: 200, private');
    const sseP = sseRead(sa, (evs) => evs.some((e) => e.type === 'data'));
    await sleep(300);
    await apply([note_('b5', 'gwacc_bob'), note_('a5', 'gwacc_alice')]);
    const sse = await sseP;
    const datas = sse.filter((e) => e.type === 'data').flatMap((e) => JSON.parse(e.data));
    check(keys(datas) === 'a5', "alice's SSE: only her row of a mixed commit", JSON.stringify(sse));

    // ---- GATEWAY_ANON_ROLE: anonymous requests take that role
    await restart({ GATEWAY_ANON_ROLE: 'gwacc_bob' });
    r = await get('/v1/state/acc?offset=-1');
    body = await r.json();
    check(r.status === 200 && keys(body) === 'b1,b3,b4,b5,o1' && /authorization/i.test(r.headers.get('vary') || ''),
        'GATEWAY_ANON_ROLE: an anonymous reader gets that role\'s feed, Vary: Authorization', JSON.stringify(body));
    r = await get('/v1/state/acc?offset=-1', 'alice');
    check(r.status === 200 && keys(await r.json()) === 'a1,a2,a3,a4,a5', 'with GATEWAY_ANON_ROLE, a token still maps to its role');

    // ---- GATEWAY_AUTH=required
    await restart({ GATEWAY_AUTH: 'required' });
    r = await get('/v1/state/acc?offset=-1');
    check(r.status === 401 && /bearer/i.test(r.headers.get('www-authenticate') || ''), 'GATEWAY_AUTH=required: no credentials is 401');
    r = await fetch(gw.url + '/v1/stream/x', { method: 'PUT', headers: { 'content-type': 'text/plain' } });
    check(r.status === 401, 'GATEWAY_AUTH=required: generic streams too');
    r = await get('/v1/state/acc?offset=-1', 'alice');
    check(r.status === 200 && keys(await r.json()) === 'a1,a2,a3,a4,a5', 'GATEWAY_AUTH=required: a valid token reads');

    // ---- GATEWAY_AUTH_MODULE: a hook maps the request to a role
    const hook = path.join(tmp, 'auth.mjs');
    fs.writeFileSync(hook, `export async function role(req) {
    const u = req.headers['x-user'];
    if (u === 'deny') return false;
    return u ? 'gwacc_' + u : null;
}
`);
    await restart({ GATEWAY_AUTH_MODULE: hook });
    r = await get('/v1/state/acc?offset=-1', null, { 'x-user': 'alice' });
    body = await r.json();
    check(r.status === 200 && keys(body) === 'a1,a2,a3,a4,a5' && /^private/.test(r.headers.get('cache-control') || ''),
        'GATEWAY_AUTH_MODULE: the hook\'s role reads its feed, private', JSON.stringify(body));
    r = await get('/v1/state/acc?offset=-1', null, { 'x-user': 'deny' });
    check(r.status === 401, 'GATEWAY_AUTH_MODULE: a hook returning false is 401');
    r = await get('/v1/state/acc?offset=-1', 'bob');
    check(r.status === 200 && keys(await r.json()) === 'b1,b3,b4,b5,o1', 'GATEWAY_AUTH_MODULE returning null: the bearer token decides');

    await gw.stop();
    gw = null;
    await db.end();
    const c = new pg.Client({ database: process.env.PGDATABASE });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    for (const role of ROLES) await c.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
    await c.end();
}

main().catch((err) => {
    check(false, 'gateway access test ran to the end', err.stack);
}).finally(async () => {
    if (gw) await gw.stop().catch(() => {});
    fs.rmSync(tmp, { recursive: true, force: true });
    console.log(summary());
    process.exit(counts.failed > 0 ? 1 : 0);
});
