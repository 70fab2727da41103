#!/usr/bin/env node
// test/t/json_schema_suite.js -- the official JSON-Schema-Test-Suite through
// state.json_schema_validate: every required (non-optional) test file of
// draft7 and draft2020-12, refRemote.json included (the suite's remotes/ are
// registered with state.json_schema_register under http://localhost:1234/),
// each case run in one psql session; prints per-file failures and
// "N passed, N failed".  --no-remote leaves refRemote.json out.
//
// The optional tests (optional/*.json and optional/format/*.json) run too,
// with assert_formats on; their failures are listed but not counted: what
// counts is one check per floor in FLOORS (each optional group must pass at
// least that many cases), so a regression below the floor fails CI.
//
// Environment: SUITE (path to JSON-Schema-Test-Suite; default
// ../shared/spec/JSON-Schema-Test-Suite beside the repository), PSQL (psql
// command line, default "psql -X -q"; connects with the PG* environment),
// JS_VALIDATE / JS_REGISTER (SQL functions).
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

// shared/ stands beside the repository (as CI clones it); the workplace's
// copy is the fallback
const suite = process.env.SUITE ||
  [path.join(__dirname, '..', '..', '..', 'shared', 'spec', 'JSON-Schema-Test-Suite'),
   '/work/shared/spec/JSON-Schema-Test-Suite'].find(p => fs.existsSync(path.join(p, 'tests'))) ||
  path.join(__dirname, '..', '..', '..', 'shared', 'spec', 'JSON-Schema-Test-Suite');
const validate = process.env.JS_VALIDATE || 'state.json_schema_validate';
const register = process.env.JS_REGISTER === undefined ? 'state.json_schema_register' : process.env.JS_REGISTER;
const psql = (process.env.PSQL || 'psql -X -q').split(/\s+/);
const args = process.argv.slice(2);
const withRemote = !args.includes('--no-remote');
if (!fs.existsSync(path.join(suite, 'tests'))) {
  console.log(`JSON-Schema-Test-Suite not found at ${suite}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const verbose = args.includes('-v');
const drafts = [
  { name: 'draft7', meta: 'http://json-schema.org/draft-07/schema#' },
  { name: 'draft2020-12', meta: null },
];
const only = args.filter(a => !a.startsWith('-'));
// optional groups (draft + "optional" or "format"): passed cases required
const FLOORS = {
  'draft2020-12 format': 761,
  'draft2020-12 optional': 157,
  'draft7 format': 673,
  'draft7 optional': 118,
};

const cases = [];
const skipped = [];
// the test files of a draft: required ones, then optional/, optional/format/
const testFiles = d => {
  const dir = path.join(suite, 'tests', d.name);
  const list = (sub, kind) => fs.existsSync(path.join(dir, sub)) ?
    fs.readdirSync(path.join(dir, sub)).sort().filter(f => f.endsWith('.json'))
      .map(f => ({ file: path.join(sub, f), kind })) : [];
  return list('.', 'required').map(e => ({ file: path.basename(e.file), kind: e.kind }))
    .concat(list('optional', 'optional'), list(path.join('optional', 'format'), 'format'));
};
for (const d of drafts) {
  const dir = path.join(suite, 'tests', d.name);
  for (const { file: f, kind } of testFiles(d)) {
    if (f === 'refRemote.json' && !withRemote) continue;
    if (only.length && !only.some(o => f.includes(o))) continue;
    const groups = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    groups.forEach((g, gi) => {
      let schema = g.schema;
      // draft-07 files do not name their draft; 2020-12 is our default
      if (d.meta && schema && typeof schema === 'object' && !('$schema' in schema))
        schema = Object.assign({ $schema: d.meta }, schema);
      g.tests.forEach((t, ti) => {
        const c = { draft: d.name, file: f, group: g.description, kind,
          test: t.description, schema, data: t.data, valid: t.valid };
        // PostgreSQL's jsonb (like text) cannot hold U+0000: such cases can
        // never reach the validator, so they are reported as skipped.
        if ((JSON.stringify(schema) + JSON.stringify(t.data)).includes('\\u0000'))
          skipped.push(c);
        else
          cases.push(c);
      });
    });
  }
}

const esc = s => s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
let sql = `\\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS durable_state;
CREATE TEMP TABLE js_case(id int, schema jsonb, data jsonb, valid boolean, fmt boolean);
CREATE TEMP TABLE js_remote(uri text, doc jsonb);
CREATE FUNCTION pg_temp.js_run(s jsonb, d jsonb, fmt boolean) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE det text;
BEGIN
  RETURN (CASE WHEN fmt THEN ${validate}(s, d, true) ELSE ${validate}(s, d) END)::text;
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
  RETURN 'ERROR: ' || SQLERRM || coalesce(' (' || det || ')', '');
END $f$;
COPY js_remote FROM STDIN;
`;
if (register) {
  const rdir = path.join(suite, 'remotes');
  const walk = dir => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.json')) {
        const uri = 'http://localhost:1234/' + path.relative(rdir, p).split(path.sep).join('/');
        sql += esc(uri) + '\t' + esc(JSON.stringify(JSON.parse(fs.readFileSync(p, 'utf8')))) + '\n';
      }
    }
  };
  walk(rdir);
}
sql += '\\.\n';
if (register) sql += `SELECT count(${register}(uri, doc)) FROM js_remote \\g /dev/null\n`;
sql += 'COPY js_case FROM STDIN;\n';
cases.forEach((c, i) => {
  sql += i + '\t' + esc(JSON.stringify(c.schema)) + '\t' + esc(JSON.stringify(c.data)) + '\t' + c.valid + '\t' + (c.kind !== 'required') + '\n';
});
sql += '\\.\n\\pset format unaligned\n\\pset tuples_only on\n\\pset fieldsep \'\\t\'\n';
sql += 'SELECT id, pg_temp.js_run(schema, data, fmt) FROM js_case ORDER BY id;\n';

const r = spawnSync(psql[0], psql.slice(1), { input: sql, encoding: 'utf8', maxBuffer: 1 << 28 });
if (r.status !== 0) {
  process.stderr.write(r.stderr || '');
  console.error('psql failed');
  process.exit(2);
}
const got = new Map();
for (const line of r.stdout.split('\n')) {
  const m = /^(\d+)\t(.*)$/.exec(line);
  if (m) got.set(+m[1], m[2]);
}
let passed = 0, failed = 0;
const perDraft = {};
const perOptional = {};
const failures = {};
cases.forEach((c, i) => {
  const res = got.get(i);
  const ok = res === String(c.valid);
  if (c.kind !== 'required') {
    const g = c.draft + ' ' + c.kind;
    const po = perOptional[g] = perOptional[g] || { passed: 0, failed: 0 };
    if (ok) po.passed++;
    else {
      po.failed++;
      const key = 'optional ' + c.draft + '/' + c.file;
      (failures[key] = failures[key] || []).push(`  ${c.group} / ${c.test}: expected ${c.valid}, got ${res}` +
        (verbose ? `\n    schema ${JSON.stringify(c.schema)}\n    data ${JSON.stringify(c.data)}` : ''));
    }
    return;
  }
  const pd = perDraft[c.draft] = perDraft[c.draft] || { passed: 0, failed: 0 };
  if (ok) { passed++; pd.passed++; }
  else {
    failed++; pd.failed++;
    const key = c.draft + '/' + c.file;
    (failures[key] = failures[key] || []).push(`  ${c.group} / ${c.test}: expected ${c.valid}, got ${res}` +
      (verbose ? `\n    schema ${JSON.stringify(c.schema)}\n    data ${JSON.stringify(c.data)}` : ''));
  }
});
for (const k of Object.keys(failures)) {
  console.log(`FAIL ${k} (${failures[k].length})`);
  for (const l of failures[k]) console.log(l);
}
for (const d of Object.keys(perDraft))
  console.log(`${d}: ${perDraft[d].passed} passed, ${perDraft[d].failed} failed`);
for (const g of Object.keys(perOptional)) {
  const po = perOptional[g], n = po.passed + po.failed;
  const pct = (100 * po.passed / n).toFixed(1);
  const ok = only.length > 0 || !(g in FLOORS) || po.passed >= FLOORS[g];
  console.log(`${g} (not counted): ${po.passed}/${n} (${pct}%), floor ${FLOORS[g]}` +
    (ok ? '' : ' NOT REACHED'));
  if (ok) passed++; else failed++;
}
for (const c of skipped)
  console.log(`SKIP ${c.draft}/${c.file}: ${c.group} / ${c.test} (contains U+0000, which jsonb cannot store)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
