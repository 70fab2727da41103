#!/usr/bin/env bash
#
# test/t/differential.sh -- differential test of the apply engine.
#
# A seeded generator (Node, below) writes a long random event stream over a
# lenient document collection ("doc") and a lenient adopted typed table
# ("item"), ~300 keys each: inserts, updates, upserts and deletes, values of
# every JSON kind for the documents (nested objects/arrays, unicode and
# escaped strings, numbers such as 1e3, 0.10, -0, 1e100, 30-digit integers),
# objects whose members fit the columns for the typed table.  The same
# generator folds the stream into the expected final state with a plain Map
# (the reference MaterializedState semantics: insert/update/upsert store,
# delete removes, a missing key is a no-op) -- no extension involved.
#
# The stream is applied through state.apply (and, for some batches,
# state.apply_text as NDJSON) in batches of random size 1..500, each its own
# transaction.  Then the extension's view is compared with the model:
#   * every batch reported applied = its size and last_offset = running total
#   * state.get_type(type) equals the model exactly (jsonb equality per key,
#     no missing and no extra keys), for both types
#   * state.get / state.get_many for every key ever used (absent -> NULL)
#   * state.snapshot(): one insert per live entity with the model's value,
#     snapshot-end at the tail
#   * state.changes(), paged, returns exactly the applied events in order,
#     offsets consecutive 1..N, headers.offset = the row's offset, and the
#     tail is N
#   * the model itself agrees with a last-writer fold in SQL over the events
#   * and, separately, the smallest batch that showed a memory bug this test
#     found (re-upsert of a deleted key, then a large event; see the end)
#
# Uses PGHOST/PGPORT/PGUSER from the environment.  Works in its own database,
# ds_differential (DS_DIFF_DB to change it), created and dropped through
# $PGDATABASE (default postgres); DS_DIFF_KEEP=1 keeps it.  DS_DIFF_SEED
# (default 20251125) and DS_DIFF_EVENTS (default 6000) change the stream; the
# same seed always gives the same stream.
# Prints one line per check and finally `N passed, M failed`; exit 1 on failure.

set -uo pipefail

SEED=${DS_DIFF_SEED:-20251125}
NEVENTS=${DS_DIFF_EVENTS:-6000}
DB=${DS_DIFF_DB:-ds_differential}
ADMIN_DB=${PGDATABASE:-postgres}
export PGCLIENTENCODING=UTF8

PASS=0
FAIL=0
ok()     { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
# after a backend crash the server restarts; wait so that nothing after us
# (nor our own next step) meets "the database system is in recovery mode"
wait_server() {
    local _
    for _ in $(seq 1 120); do
        psql -X -q -d "$ADMIN_DB" -c 'SELECT 1' >/dev/null 2>&1 </dev/null && return 0
        sleep 0.5
    done
    return 1
}
finish() {
    wait_server
    if [[ ${DS_DIFF_KEEP:-} != 1 && ${CREATED_DB:-0} == 1 ]]; then
        psql -X -q -d "$ADMIN_DB" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 </dev/null
    fi
    [[ -n ${WORK:-} ]] && rm -rf "$WORK"
    echo "$PASS passed, $FAIL failed"
    ((FAIL == 0 && PASS > 0)) && exit 0
    exit 1
}

command -v node >/dev/null || { not_ok "node is not installed"; finish; }
command -v psql >/dev/null || { not_ok "psql is not installed"; finish; }
WORK=$(mktemp -d /tmp/ds-differential.XXXXXX) || { not_ok "mktemp failed"; finish; }
START=$SECONDS

# ---------------------------------------------------------------------------
# The generator and the independent model.
# ---------------------------------------------------------------------------
cat >"$WORK/gen.js" <<'EOF_JS'
'use strict';
const fs = require('fs');
const path = require('path');
const [outDir, seedArg, nArg] = process.argv.slice(2);
const NEVENTS = Number(nArg);
const NKEYS = 300;
const STREAM = 'diff';

// mulberry32: a small seeded PRNG, so the stream is reproducible
let state = Number(seedArg) >>> 0;
function rnd() {
  state = (state + 0x6D2B79F5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const chance = (p) => rnd() < p;

// --- strings -------------------------------------------------------------
// no '$' anywhere: the SQL files quote JSON with $ds$...$ds$
const PIECES = ['a', 'b', 'q', 'Z', '0', '7', ' ', '-', '_', '.', '"', '\\', '/', "'",
  '{', '}', '[', ']', ':', ',', '~', '%', '&', '=', '?', '\u00e9', '\u00df', '\u0436', '\u4e2d',
  '\u6587', '\u05e9', '\u0627', '\u2028', '\u00a0', '\u{1F600}', '\u{1F389}', '\u{10348}',
  'e\u0301', 'hello', 'world', 'null', 'true', '1e3'];
const CTRL = ['\n', '\t', '\r', '\b', '\f', '\u0001', '\u001f', '\u007f'];
function randString(maxParts, allowCtrl) {
  let s = '';
  const n = ri(maxParts + 1);
  for (let i = 0; i < n; i++) s += (allowCtrl && chance(0.05)) ? pick(CTRL) : pick(PIECES);
  return s;
}
const hex4 = (n) => {
  const h = n.toString(16).padStart(4, '0');
  return chance(0.5) ? h : h.toUpperCase();
};
// JSON string literal, with some optional escapes (\u00e9, surrogate pairs, \/)
function encStr(s) {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += chance(0.5) ? '\\n' : '\\u000a';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (cp < 0x20) out += '\\u' + hex4(cp);
    else if (ch === '/' && chance(0.5)) out += '\\/';
    else if (cp > 0xffff && chance(0.3)) {
      const v = cp - 0x10000;
      out += '\\u' + hex4(0xd800 + (v >> 10)) + '\\u' + hex4(0xdc00 + (v & 0x3ff));
    } else if (cp > 0x7e && cp <= 0xffff && chance(0.3)) out += '\\u' + hex4(cp);
    else if (cp >= 0x41 && cp <= 0x5a && chance(0.02)) out += '\\u' + hex4(cp);
    else out += ch;
  }
  return out + '"';
}

// --- numbers (raw JSON literals) ------------------------------------------
const NUMS = ['0', '-0', '1', '-1', '1e3', '1E3', '1e+3', '2.5e-3', '0.1', '0.10', '-0.5',
  '100', '1e100', '-1E-10', '123456789012345678901234567890', '-98765.4321000',
  '3.14159265358979323846264338327950288', '9223372036854775807', '-9223372036854775808',
  '1.0', '5e0', '0.000001', '1e-7', '12345678901234567890.123456789'];
const INTS = ['0', '-0', '1', '-1', '1e3', '1E3', '1e+3', '42', '5e0', '-17',
  '9223372036854775807', '-9223372036854775808', '1000000'];
function randNumber() {
  switch (ri(3)) {
    case 0: return pick(NUMS);
    case 1: return String(ri(2000001) - 1000000);
    default: return (rnd() * 2000 - 1000).toFixed(ri(7));
  }
}
function randInt() {
  return chance(0.5) ? pick(INTS) : String(ri(2000001) - 1000000);
}

// --- JSON values -----------------------------------------------------------
const MEMBER_NAMES = ['a', 'b', 'name', 'value', 'id', 'x', 'y', 'nested', 'list', '',
  '\u00e9t\u00e9', '\u{1F600}', 'with space', 'quote"d', 'back\\slash', 'type', 'key'];
function randObject(depth, forbidId) {
  const n = ri(5);
  const seen = new Set();
  const parts = [];
  for (let i = 0; i < n; i++) {
    const name = chance(0.8) ? pick(MEMBER_NAMES) : randString(3, true);
    if (seen.has(name) || (forbidId && name === 'id')) continue;
    seen.add(name);
    parts.push(encStr(name) + ':' + randValue(depth + 1));
  }
  return '{' + parts.join(',') + '}';
}
function randArray(depth) {
  const n = ri(5);
  const parts = [];
  for (let i = 0; i < n; i++) parts.push(randValue(depth + 1));
  return '[' + parts.join(', ') + ']';
}
function randValue(depth) {
  const k = depth >= 3 ? ri(5) : ri(8);
  switch (k) {
    case 0: return 'null';
    case 1: return chance(0.5) ? 'true' : 'false';
    case 2: return randNumber();
    case 3: case 4: return encStr(randString(6, true));
    case 5: return randArray(depth);
    default: return randObject(depth, false);
  }
}

// --- keys ------------------------------------------------------------------
function makeKeys(prefix) {
  const keys = [];
  const seen = new Set();
  for (let i = 0; keys.length < NKEYS; i++) {
    let k;
    if (i < 10) k = String(100 + i);                       // numeric-looking keys
    else if (i % 7 === 0) k = prefix + '-' + randString(3, false) + '-' + i;
    else if (i % 11 === 0) k = '\u043a\u043b\u044e\u0447-' + i + '-\u{1F511}';
    else k = prefix + String(i).padStart(4, '0');
    if (k === '' || seen.has(k)) continue;
    seen.add(k);
    keys.push(k);
  }
  return keys;
}
const TYPES = {
  doc: { keys: makeKeys('d') },
  item: { keys: makeKeys('i') },
};
for (const t of Object.keys(TYPES)) TYPES[t].hot = TYPES[t].keys.slice(0, 30);

// value of a document entity: any JSON kind; an object may carry "id" = key
function docValue(key) {
  if (chance(0.45)) {
    let obj = randObject(1, true);
    if (chance(0.25)) {
      const idLit = (/^[0-9]+$/.test(key) && chance(0.5)) ? key : encStr(key);
      obj = obj === '{}' ? '{"id":' + idLit + '}' : '{"id":' + idLit + ',' + obj.slice(1);
    }
    return obj;
  }
  let v;
  do v = randValue(1); while (v.startsWith('{'));   // objects: above (no stray "id")
  return v;
}

// value of a typed entity: an object whose members fit the columns
//   id text, name text, qty bigint, price numeric, active boolean,
//   tags jsonb, meta jsonb
// Returns [json text, expected json text]: a typed row has no nulls, so
// JSON null members are absent from what is read back, and the primary key
// member is always present (filled in from the event key).
function itemValue(key) {
  const members = [];
  const expected = ['"id":' + encStr(key)];
  if (chance(0.3)) members.push('"id":' + ((/^[0-9]+$/.test(key) && chance(0.5)) ? key : encStr(key)));
  const gens = {
    name: () => encStr(randString(5, true)),
    qty: randInt,
    price: randNumber,
    active: () => (chance(0.5) ? 'true' : 'false'),
    tags: () => (chance(0.8) ? randArray(1) : randValue(1)),
    meta: () => (chance(0.8) ? randObject(1, false) : randValue(1)),
  };
  for (const [name, gen] of Object.entries(gens)) {
    if (!chance(0.6)) continue;
    const v = chance(0.1) ? 'null' : gen();
    members.push(encStr(name) + ':' + v);
    if (v !== 'null') expected.push(encStr(name) + ':' + v);
  }
  // member order must not matter
  for (let i = members.length - 1; i > 0; i--) {
    const j = ri(i + 1);
    [members[i], members[j]] = [members[j], members[i]];
  }
  return ['{' + members.join(', ') + '}', '{' + expected.join(',') + '}'];
}

const TIMESTAMPS = ['2025-01-31T12:00:00.000Z', '2025-11-25T01:02:03Z',
  '2024-02-29T23:59:59.123456+05:30', '2025-06-01t00:00:00-08:00'];

// --- the stream and the model ------------------------------------------------
const model = { doc: new Map(), item: new Map() };
const events = [];           // raw JSON text of each event (one line each)
const opCount = { insert: 0, update: 0, upsert: 0, delete: 0 };
let deletesOfMissing = 0;
for (let n = 1; n <= NEVENTS; n++) {
  const type = chance(0.5) ? 'doc' : 'item';
  const T = TYPES[type];
  const key = chance(0.5) ? pick(T.hot) : pick(T.keys);
  const r = rnd();
  const op = r < 0.25 ? 'insert' : r < 0.5 ? 'update' : r < 0.8 ? 'upsert' : 'delete';
  opCount[op]++;
  const members = ['"type":' + encStr(type), '"key":' + encStr(key)];
  if (op === 'delete') {
    if (!model[type].has(key)) deletesOfMissing++;
    model[type].delete(key);
    if (chance(0.15)) members.push('"value":null');
  } else {
    let v, expected;
    if (type === 'doc') { v = docValue(key); expected = v; }
    else [v, expected] = itemValue(key);
    members.push('"value":' + v);
    model[type].set(key, expected);
  }
  if ((op === 'update' || op === 'delete') && chance(0.1)) {
    // ignored: the collections do not check old_value
    members.push('"old_value":' + (type === 'doc' ? docValue(key) : itemValue(key)[0]));
  }
  const headers = ['"operation":' + encStr(op)];
  if (chance(0.1)) headers.push('"txid":' + encStr('tx-' + ri(1000000)));
  if (chance(0.1)) headers.push('"timestamp":' + encStr(pick(TIMESTAMPS)));
  if (chance(0.5)) headers.reverse();
  members.push('"headers": {' + headers.join(', ') + '}');
  for (let i = members.length - 1; i > 0; i--) {
    const j = ri(i + 1);
    [members[i], members[j]] = [members[j], members[i]];
  }
  const text = '{' + members.join(chance(0.5) ? ',' : ', ') + '}';
  if (text.includes('$ds$') || text.includes('\n')) throw new Error('bad event text');
  events.push(text);
}

// batches of random size 1..500; most through state.apply(jsonb), some
// through state.apply_text as NDJSON
const batchesSql = [];
let nb = 0, nApply = 0, nText = 0;
for (let i = 0; i < events.length;) {
  const size = Math.min(1 + ri(500), events.length - i);
  const chunk = events.slice(i, i + size);
  nb++;
  let call;
  if (chance(0.7)) {
    nApply++;
    call = `state.apply($ds$[${chunk.join(',\n')}]$ds$::jsonb, '${STREAM}')`;
  } else {
    nText++;
    call = `state.apply_text($ds$${chunk.join('\n')}\n$ds$, '${STREAM}')`;
  }
  batchesSql.push(`INSERT INTO diff_batches SELECT ${nb}, ${size}, ${i + size}, applied, skipped, last_offset FROM ${call};`);
  i += size;
}

const q = (s) => {
  if (s.includes('$ds$')) throw new Error('cannot quote');
  return '$ds$' + s + '$ds$';
};
const rows = (list) => list.join(',\n');
let eventsSql = '';
for (let i = 0; i < events.length; i += 500) {
  eventsSql += 'INSERT INTO diff_events (n, ev) VALUES\n' +
    rows(events.slice(i, i + 500).map((e, j) => `(${i + j + 1}, ${q(e)})`)) + ';\n';
}
let expectedSql = '';
let nKeys = 0, nLive = 0;
for (const type of Object.keys(TYPES)) {
  expectedSql += 'INSERT INTO diff_keys (type, key) VALUES\n' +
    rows(TYPES[type].keys.map((k) => `('${type}', ${q(k)})`)) + ';\n';
  nKeys += TYPES[type].keys.length;
  if (model[type].size > 0) {
    expectedSql += 'INSERT INTO diff_expected (type, key, value) VALUES\n' +
      rows([...model[type]].map(([k, v]) => `('${type}', ${q(k)}, ${q(v)})`)) + ';\n';
  }
  nLive += model[type].size;
}
fs.writeFileSync(path.join(outDir, 'batches.sql'), batchesSql.join('\n') + '\n');
fs.writeFileSync(path.join(outDir, 'events.sql'), eventsSql);
fs.writeFileSync(path.join(outDir, 'expected.sql'), expectedSql);
console.log([events.length, nb, nApply, nText, nKeys, nLive, model.doc.size, model.item.size,
  opCount.insert, opCount.update, opCount.upsert, opCount.delete, deletesOfMissing].join(' '));
EOF_JS

if ! read -r N_EVENTS N_BATCHES N_APPLY N_TEXT N_KEYS N_LIVE N_DOC N_ITEM \
        N_INS N_UPD N_UPS N_DEL N_DEL_MISSING < <(node "$WORK/gen.js" "$WORK" "$SEED" "$NEVENTS"); then
    not_ok "generator failed"
    finish
fi
if [[ -z ${N_DEL_MISSING:-} ]]; then
    not_ok "generator failed"
    finish
fi
echo "# seed $SEED: $N_EVENTS events ($N_INS insert, $N_UPD update, $N_UPS upsert, $N_DEL delete, $N_DEL_MISSING of a missing key) in $N_BATCHES batches ($N_APPLY apply, $N_TEXT apply_text); $N_KEYS keys, $N_LIVE live at the end ($N_DOC doc, $N_ITEM item)"

# ---------------------------------------------------------------------------
# A fresh database, the collections, the stream.
# ---------------------------------------------------------------------------
if ! psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_DB" </dev/null >"$WORK/createdb.log" 2>&1 \
        -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" -c "CREATE DATABASE \"$DB\""; then
    cat "$WORK/createdb.log"
    not_ok "could not create database $DB"
    finish
fi
CREATED_DB=1
export PGDATABASE=$DB
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -d "$DB")

if ! "${PSQL[@]}" >"$WORK/setup.log" 2>&1 <<'EOF_SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS durable_state;
SELECT state.create_collection('diff_docs', type => 'doc', stream => 'diff', mode => 'lenient');
CREATE TABLE diff_items (
    id     text PRIMARY KEY,
    name   text,
    qty    bigint,
    price  numeric,
    active boolean,
    tags   jsonb,
    meta   jsonb
);
SELECT state.create_collection('diff_items', type => 'item', table_name => 'diff_items',
                               stream => 'diff', mode => 'lenient');
CREATE TABLE diff_batches (b int PRIMARY KEY, size int, total bigint,
                           applied bigint, skipped bigint, last_offset text);
CREATE TABLE diff_events (n int PRIMARY KEY, ev jsonb NOT NULL);
CREATE TABLE diff_keys (type text, key text, PRIMARY KEY (type, key));
CREATE TABLE diff_expected (type text, key text, value jsonb NOT NULL, PRIMARY KEY (type, key));
EOF_SQL
then
    cat "$WORK/setup.log"
    not_ok "setup (extension, collections) failed"
    finish
fi

# ---------------------------------------------------------------------------
# Apply the stream, one transaction per batch.
# ---------------------------------------------------------------------------
T0=$SECONDS
if "${PSQL[@]}" -f "$WORK/batches.sql" >"$WORK/apply.log" 2>&1 </dev/null; then
    ok "applied $N_EVENTS events in $N_BATCHES batches without error ($((SECONDS - T0))s)"
else
    head -c 3000 "$WORK/apply.log"; echo
    not_ok "applying the stream failed"
    wait_server
fi

if ! "${PSQL[@]}" -f "$WORK/events.sql" -f "$WORK/expected.sql" >"$WORK/load.log" 2>&1 </dev/null; then
    head -c 3000 "$WORK/load.log"; echo
    not_ok "loading the event list and the model failed"
    finish
fi

# ---------------------------------------------------------------------------
# Compare.  Each query returns: check name | passed (t/f) | detail.
# ---------------------------------------------------------------------------
cat >"$WORK/check.sql" <<'EOF_SQL'
\pset format unaligned
\pset tuples_only on
\pset fieldsep '|'
SET client_min_messages = warning;

-- the batches' results
SELECT 'batch results',
       count(*) = :n_batches
         AND bool_and(applied = size AND skipped = 0 AND last_offset = state.format_offset(total)),
       format('%s batches, %s events applied, %s skipped, last offset %s; bad batches: %s',
              count(*), sum(applied), sum(skipped), max(last_offset),
              coalesce(string_agg(b::text, ',') FILTER (WHERE NOT (applied = size AND skipped = 0
                         AND last_offset = state.format_offset(total))), 'none'))
  FROM diff_batches;

-- the oracle itself: the Node model agrees with a last-writer fold in SQL
WITH last AS (
    SELECT DISTINCT ON (ev->>'type', ev->>'key') ev->>'type' AS type, ev->>'key' AS key, ev
      FROM diff_events ORDER BY ev->>'type', ev->>'key', n DESC),
fold AS (
    SELECT type, key,
           CASE WHEN type = 'doc' THEN ev->'value'
                ELSE (SELECT coalesce(jsonb_object_agg(m.key, m.value), '{}')
                        FROM jsonb_each(ev->'value') m
                       WHERE m.value <> 'null' AND m.key <> 'id')
                     || jsonb_build_object('id', key) END AS value
      FROM last WHERE ev->'headers'->>'operation' <> 'delete')
SELECT 'model = SQL fold of the events',
       count(*) FILTER (WHERE f.key IS NULL OR e.key IS NULL OR f.value <> e.value) = 0,
       format('%s entities; %s differ', count(*),
              count(*) FILTER (WHERE f.key IS NULL OR e.key IS NULL OR f.value <> e.value))
  FROM fold f FULL JOIN diff_expected e USING (type, key);

-- state.get_type against the model, per type
SELECT format('get_type(%L) = model', t.type),
       dup = 0 AND missing = 0 AND extra = 0 AND differ = 0 AND same = t.live,
       format('%s keys compared: %s equal (%s also as text), %s missing, %s extra, %s different, %s duplicate%s',
              same + missing + extra + differ, same, same_text, missing, extra, differ, dup,
              CASE WHEN examples IS NOT NULL THEN '; e.g. ' || examples ELSE '' END)
  FROM (SELECT type, count(*) AS live FROM diff_expected GROUP BY type
        UNION ALL SELECT t, 0 FROM unnest(ARRAY['doc', 'item']) t
         WHERE NOT EXISTS (SELECT 1 FROM diff_expected WHERE type = t)) t
 CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE a.key IS NULL) AS missing,
           count(*) FILTER (WHERE e.key IS NULL) AS extra,
           count(*) FILTER (WHERE a.key IS NOT NULL AND e.key IS NOT NULL AND a.value <> e.value) AS differ,
           count(*) FILTER (WHERE a.value = e.value) AS same,
           count(*) FILTER (WHERE a.value::text = e.value::text) AS same_text,
           (SELECT count(*) - count(DISTINCT key) FROM state.get_type(t.type, 'diff')) AS dup,
           array_to_string((array_agg(format('key %s: got %s, expected %s', coalesce(a.key, e.key),
                                             coalesce(left(a.value::text, 200), 'nothing'),
                                             coalesce(left(e.value::text, 200), 'nothing')))
                            FILTER (WHERE a.key IS NULL OR e.key IS NULL OR a.value <> e.value))[1:5], '; ')
             AS examples
      FROM (SELECT * FROM state.get_type(t.type, 'diff')) a
      FULL JOIN (SELECT key, value FROM diff_expected WHERE type = t.type) e ON a.key = e.key
 ) c
 ORDER BY t.type;

-- state.get for every key ever used (deleted and never-stored keys: NULL)
SELECT 'get() for every key',
       count(*) FILTER (WHERE state.get(k.type, k.key, 'diff') IS DISTINCT FROM e.value) = 0,
       format('%s keys (%s live): %s wrong', count(*), count(e.value),
              count(*) FILTER (WHERE state.get(k.type, k.key, 'diff') IS DISTINCT FROM e.value))
  FROM diff_keys k LEFT JOIN diff_expected e USING (type, key);

-- state.get_many with every key of a type at once
SELECT format('get_many(%L) = model', k.type),
       state.get_many(k.type, array_agg(k.key), 'diff')
         = coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM diff_expected e WHERE e.type = k.type), '{}'),
       format('%s keys asked', count(*))
  FROM diff_keys k GROUP BY k.type ORDER BY k.type;

-- state.snapshot: the live entities and the tail
WITH s AS (SELECT s, row_number() OVER () AS i FROM state.snapshot('diff') s),
ins AS (SELECT s->>'type' AS type, s->>'key' AS key, s->'value' AS value FROM s WHERE s ? 'type'),
cmp AS (SELECT count(*) FILTER (WHERE i.key IS NULL OR e.key IS NULL OR i.value <> e.value) AS bad,
               count(*) AS n
          FROM ins i FULL JOIN diff_expected e USING (type, key))
SELECT 'snapshot() = model',
       cmp.bad = 0
         AND (SELECT s->'headers'->>'control' FROM s ORDER BY i LIMIT 1) = 'snapshot-start'
         AND (SELECT s->'headers'->>'control' FROM s ORDER BY i DESC LIMIT 1) = 'snapshot-end'
         AND (SELECT s->'headers'->>'offset' FROM s ORDER BY i DESC LIMIT 1) = state.format_offset(:n_events),
       format('%s entities, %s wrong, snapshot-end at %s',
              (SELECT count(*) FROM ins), cmp.bad,
              (SELECT s->'headers'->>'offset' FROM s ORDER BY i DESC LIMIT 1))
  FROM cmp;

-- state.changes, paged, against the applied events
CREATE TEMP TABLE got (i serial, "offset" text, event jsonb);
DO $$
DECLARE
    since text := '-1';
    page  int := 0;
    n     int;
    sizes int[] := ARRAY[1000, 1, 777, 0, 250, 1000];
BEGIN
    LOOP
        page := page + 1;
        IF page > 100000 THEN RAISE EXCEPTION 'changes() paging does not end'; END IF;
        INSERT INTO got ("offset", event)
            SELECT c."offset", c.event
              FROM state.changes('diff', since, sizes[1 + page % 6]) c;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 AND sizes[1 + page % 6] > 0 THEN EXIT; END IF;
        IF n > sizes[1 + page % 6] THEN RAISE EXCEPTION 'changes() returned more than max_events'; END IF;
        SELECT coalesce(max(g."offset"), '-1') INTO since FROM got g;
    END LOOP;
END
$$;
SELECT 'changes() = applied events, in order',
       count(*) = :n_events AND bad = 0 AND ordered,
       format('%s events read in pages, %s applied; %s differ (offset, headers.offset or event)%s',
              count(*), :n_events, bad,
              CASE WHEN NOT ordered THEN '; NOT in offset order' ELSE '' END)
  FROM (SELECT g.*, e.ev,
               count(*) FILTER (WHERE e.ev IS NULL OR g."offset" IS DISTINCT FROM state.format_offset(g.i)
                                   OR g.event->'headers'->>'offset' IS DISTINCT FROM g."offset"
                                   OR (g.event #- '{headers,offset}') IS DISTINCT FROM e.ev) OVER () AS bad,
               bool_and(g."offset" > coalesce(p."offset", '')) OVER () AS ordered
          FROM got g
          LEFT JOIN diff_events e ON e.n = g.i
          LEFT JOIN got p ON p.i = g.i - 1) x
 GROUP BY bad, ordered
UNION ALL
SELECT 'changes() = applied events, in order', false, 'changes() returned nothing'
 WHERE NOT EXISTS (SELECT 1 FROM got);

SELECT 'tail and changes(since) edges',
       state.tail('diff') = state.format_offset(:n_events)
         AND (SELECT count(*) FROM state.changes('diff', 'now')) = 0
         AND (SELECT count(*) FROM state.changes('diff', state.format_offset(:n_events - 5))) = 5
         AND (SELECT min("offset") FROM state.changes('diff', state.format_offset(:n_events - 5)))
               = state.format_offset(:n_events - 4),
       format('tail %s', state.tail('diff'));
EOF_SQL

# ON_ERROR_STOP off: every check runs even if an earlier one fails
"${PSQL[@]}" -v ON_ERROR_STOP=0 -v n_batches="$N_BATCHES" -v n_events="$N_EVENTS" \
    -f "$WORK/check.sql" >"$WORK/check.out" 2>"$WORK/check.err" </dev/null
while IFS='|' read -r name passed detail; do
    [[ -z $name ]] && continue
    if [[ $passed == t ]]; then
        ok "$name: $detail"
    elif [[ $passed == f ]]; then
        not_ok "$name: $detail"
    else
        echo "# $name${passed:+|$passed}${detail:+|$detail}"
    fi
done <"$WORK/check.out"
if grep -qE 'ERROR|FATAL|server closed|connection' "$WORK/check.err"; then
    head -c 3000 "$WORK/check.err"; echo
    not_ok "some comparison queries failed (see above)"
    wait_server
fi

# ---------------------------------------------------------------------------
# The smallest form of a failure this test found: a batch whose first event
# probes a key whose index entry points to a dead row (the key was deleted
# before), followed by an event that allocates a lot.  The btree scan
# allocates its killed-items array lazily in whatever memory context is
# current -- if that is a per-event context that is reset, the batch ends
# with "could not find block containing chunk" or a segfault.
# ---------------------------------------------------------------------------
if out=$("${PSQL[@]}" -At 2>&1 </dev/null <<'EOF_SQL'
SET client_min_messages = warning;
SELECT FROM state.create_collection('diff_dead', type => 'doc', stream => 'diff_dead', mode => 'lenient');
SELECT FROM state.apply('{"type": "doc", "key": "a", "value": 1, "headers": {"operation": "insert"}}', 'diff_dead');
SELECT FROM state.apply('{"type": "doc", "key": "a", "headers": {"operation": "delete"}}', 'diff_dead');
SELECT FROM state.apply(jsonb_build_array(
    '{"type": "doc", "key": "a", "value": 2, "headers": {"operation": "upsert"}}'::jsonb,
    jsonb_build_object('type', 'doc', 'key', 'b', 'value', repeat('y', 12000),
                       'headers', jsonb_build_object('operation', 'upsert'))), 'diff_dead');
SELECT state.get('doc', 'a', 'diff_dead') = '2'
       AND length(state.get('doc', 'b', 'diff_dead') #>> '{}') = 12000
       AND (SELECT count(*) FROM state.changes('diff_dead')) = 4;
EOF_SQL
) && [[ $out == t ]]; then
    ok "re-upsert of a deleted key, then a large event, in one batch"
else
    not_ok "re-upsert of a deleted key, then a large event, in one batch: $(tr '\n' ' ' <<<"$out" | head -c 500)"
    wait_server
fi

echo "# $((SECONDS - START))s in all"
finish
