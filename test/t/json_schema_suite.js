#!/usr/bin/env node
// test/t/json_schema_suite.js -- the official JSON-Schema-Test-Suite through
// state.json_schema_validate, for all five drafts the validator supports
// (draft4, draft6, draft7, draft2019-09, draft2020-12):
//   required   every test file of a draft's directory, refRemote.json included
//              (the suite's remotes/ are registered with
//              state.json_schema_register under http://localhost:1234/)
//   optional   optional/*.json (bignum, cross-draft, ecmascript-regex,
//              content...), with assert_formats => true (which also makes
//              draft-07's content keywords assertions)
//   format     optional/format/*.json, with assert_formats => true
// A draft's files do not all say "$schema" (draft4 to draft7 never do): the
// draft's meta-schema URI is added to a root schema object without one, except
// in optional/no-schema.json, which is about its absence.  Each case runs in
// one psql session; prints per-file failures, per-draft and per-kind counts,
// and last "N passed, N failed" over every case: a failure fails the run,
// but for the optional cases listed in KNOWN (work of another part of the
// validator, reported as KNOWN, or as XPASS once they pass).
// Arguments: --no-remote leaves refRemote.json out; --no-format reports the
// format cases without counting them; -v prints schema and data of each
// failure; other words
// keep only the files whose draft/kind/name includes one of them
// ("draft4/", "optional/", "ref").
//
// Every case also asks JS_ERRORS for the value's errors: the yes/no answer
// (the in-place evaluator, src/jsonschema/inplace.c, for most schemas) and
// the error list (the general evaluator) must agree, or the case fails
// with MISMATCH.
//
// Environment: SUITE (path to JSON-Schema-Test-Suite; default
// ../shared/spec/JSON-Schema-Test-Suite beside the repository), PSQL (psql
// command line, default "psql -X -q"; connects with the PG* environment),
// JS_VALIDATE / JS_REGISTER / JS_ERRORS (SQL functions; JS_ERRORS empty
// leaves out the agreement check).
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
const errorsFn = process.env.JS_ERRORS === undefined ? 'state.json_schema_errors' : process.env.JS_ERRORS;
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
  { name: 'draft4', meta: 'http://json-schema.org/draft-04/schema#' },
  { name: 'draft6', meta: 'http://json-schema.org/draft-06/schema#' },
  { name: 'draft7', meta: 'http://json-schema.org/draft-07/schema#' },
  { name: 'draft2019-09', meta: 'https://json-schema.org/draft/2019-09/schema' },
  { name: 'draft2020-12', meta: 'https://json-schema.org/draft/2020-12/schema' },
];
// the kinds of case, and whether their failures fail the run
const kinds = [
  { name: 'required', dir: '', counted: true },
  { name: 'optional', dir: 'optional', counted: true },
  { name: 'format', dir: path.join('optional', 'format'), counted: !args.includes('--no-format') },
];
const only = args.filter(a => !a.startsWith('-'));

// optional cases that fail for want of what other parts of the validator do
// (regex.c's ECMA-262 classes, content* and format assertions): by file
// (its end), group and test (regular expressions)
const KNOWN = [
];
const known = c => KNOWN.find(k => k.file.test(c.file) && (!k.group || k.group.test(c.group)) &&
                                   (!k.test || k.test.test(c.test)));

// JSON.parse would turn 1.0 into 1 (draft4's "integer" tells them apart) and
// round big numbers: numbers are read as marked strings holding their
// lexemes, and written back as those lexemes.
const NUM = '\uE000num:';
const loadJson = file => JSON.parse(fs.readFileSync(file, 'utf8').replace(
  /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g,
  t => (t[0] === '"' ? t : JSON.stringify(NUM + t))));
const toJson = v => JSON.stringify(v).replace(/"\uE000num:([^"]*)"/g, '$1');

const cases = [];
const skipped = [];
for (const d of drafts) {
  for (const k of kinds) {
    const dir = path.join(suite, 'tests', d.name, k.dir);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir).sort()) {
      if (!f.endsWith('.json')) continue;            // skips subdirectories
      if (f === 'refRemote.json' && !withRemote) continue;
      const label = `${d.name}/${k.dir ? k.dir.split(path.sep).join('/') + '/' : ''}${f}`;
      if (only.length && !only.some(o => label.includes(o))) continue;
      const groups = loadJson(path.join(dir, f));
      groups.forEach(g => {
        let schema = g.schema;
        if (schema && typeof schema === 'object' && !('$schema' in schema) &&
            f !== 'no-schema.json')
          schema = Object.assign({ $schema: d.meta }, schema);
        g.tests.forEach(t => {
          const c = { draft: d.name, kind: k.name, counted: k.counted, file: label,
            group: g.description, test: t.description, schema, data: t.data,
            valid: t.valid, formats: k.name !== 'required' };
          if (k.name === 'optional' && (c.known = known(c)))
            c.counted = false;
          // PostgreSQL's jsonb (like text) cannot hold U+0000: such cases can
          // never reach the validator, so they are reported as skipped.
          if ((toJson(schema) + toJson(t.data)).includes('\\u0000'))
            skipped.push(c);
          else
            cases.push(c);
        });
      });
    }
  }
}

const esc = s => s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
let sql = `\\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS durable_state;
CREATE TEMP TABLE js_case(id int, schema jsonb, data jsonb, formats boolean);
CREATE TEMP TABLE js_remote(uri text, doc jsonb);
CREATE FUNCTION pg_temp.js_run(s jsonb, d jsonb, f boolean) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE det text; v boolean; e boolean;
BEGIN
  IF f THEN
    v := ${validate}(s, d, true);
  ELSE
    v := ${validate}(s, d);
  END IF;
${errorsFn ? `  e := NOT EXISTS (SELECT FROM ${errorsFn}(s, d, f));
  IF v IS DISTINCT FROM e THEN
    RETURN 'MISMATCH: valid ' || v || ' but ' || CASE WHEN e THEN 'no errors' ELSE 'errors' END;
  END IF;
` : ''}  RETURN v::text;
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
        sql += esc(uri) + '\t' + esc(toJson(loadJson(p))) + '\n';
      }
    }
  };
  walk(rdir);
}
sql += '\\.\n';
if (register) sql += `SELECT count(${register}(uri, doc)) FROM js_remote \\g /dev/null\n`;
sql += 'COPY js_case FROM STDIN;\n';
cases.forEach((c, i) => {
  sql += i + '\t' + esc(toJson(c.schema)) + '\t' + esc(toJson(c.data)) + '\t' + c.formats + '\n';
});
sql += '\\.\n\\pset format unaligned\n\\pset tuples_only on\n\\pset fieldsep \'\\t\'\n';
sql += 'SELECT id, pg_temp.js_run(schema, data, formats) FROM js_case ORDER BY id;\n';

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
const counts = {};                              // draft -> kind -> {passed, failed}
const failures = {};
const knownLines = [];
cases.forEach((c, i) => {
  const res = got.get(i);
  const ok = res === String(c.valid);
  const pd = counts[c.draft] = counts[c.draft] || {};
  const pk = pd[c.kind] = pd[c.kind] || { passed: 0, failed: 0, known: 0 };
  if (c.known)
    knownLines.push(`${ok ? 'XPASS (take it out of KNOWN)' : 'KNOWN'} ${c.file}: ${c.group} / ${c.test}` +
                    (ok ? '' : ` (${c.known.why})`));
  if (ok) pk.passed++;
  else if (c.known) {
    pk.failed++;
    pk.known++;
  } else {
    pk.failed++;
    (failures[c.file] = failures[c.file] || []).push(`  ${c.group} / ${c.test}: expected ${c.valid}, got ${res}` +
      (verbose ? `\n    schema ${toJson(c.schema)}\n    data ${toJson(c.data)}` : ''));
  }
  if (c.counted) {
    if (ok) passed++;
    else failed++;
  }
});
for (const k of Object.keys(failures)) {
  console.log(`FAIL ${k} (${failures[k].length})`);
  for (const l of failures[k]) console.log(l);
}
for (const l of knownLines)
  console.log(l);
for (const c of skipped)
  console.log(`SKIP ${c.file}: ${c.group} / ${c.test} (contains U+0000, which jsonb cannot store)`);
const pct = p => (p.passed + p.failed ? (100 * p.passed / (p.passed + p.failed)).toFixed(1) : '-');
for (const d of Object.keys(counts))
  console.log(`${d}: ` + kinds.filter(k => counts[d][k.name]).map(k => {
    const p = counts[d][k.name];
    return `${k.name} ${p.passed}/${p.passed + p.failed} (${pct(p)}%)` +
      (p.known ? ` (${p.known} known)` : '') + (k.counted ? '' : ' not counted');
  }).join(', '));
// every draft is tested: a suite without one of them is a failure
if (!only.length)
  for (const d of drafts)
    if (!(counts[d.name] && counts[d.name].required)) {
      console.log(`FAIL ${d.name}: no required cases found in ${path.join(suite, 'tests', d.name)}`);
      failed++;
    }
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;   // (process.exit could cut off piped output)
