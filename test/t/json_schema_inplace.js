#!/usr/bin/env node
// test/t/json_schema_inplace.js -- the validator's fast paths against
// references, on seeded random input (DS_JS_SEED):
//   patterns  random patterns, mostly of the kind src/jsonschema/regex_simple.c
//             matches without PCRE2 (anchors, ASCII literals and classes,
//             \d, \w, quantifiers, lazy ones), some not, each on subjects
//             built to match and random ones (non-ASCII, newlines): what
//             state.json_schema_validate says of {"pattern": p} must be what
//             JavaScript's RegExp (ECMA-262, "u" flag) says;
//   schemas   random schemas (2020-12 and draft-07: properties, required,
//             additionalProperties, patternProperties, items, prefixItems,
//             contains, uniqueItems, enum, const, bounds, combinators, $ref
//             and a recursive $defs) over random values stored as the rows of
//             a table, the schema a constant: the yes/no answer
//             (src/jsonschema/inplace.c, with its shapes of the last object
//             carried from row to row) must agree with
//             state.json_schema_errors (the general evaluator).
// Prints `N passed, M failed`.
'use strict';
const path = require('path');
const { check, note, summary, counts } = require(path.join(__dirname, '../node/tap.js'));
const { rng } = require(path.join(__dirname, '../node/prng.js'));
const pg = require(path.join(__dirname, '../node/node_modules/pg'));

const SEED = Number(process.env.DS_JS_SEED || 20261203);
const PATTERNS = Number(process.env.DS_JS_PATTERNS || 3000);
const SCHEMAS = Number(process.env.DS_JS_SCHEMAS || 400);
const rand = rng(SEED);
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

// -- patterns -----------------------------------------------------------------
// an atom: its source and characters it matches (to build matching subjects)
const ATOMS = [
  ...'abzA07_-@ /:#%~=,'.split('').map((c) => ({ src: c, ex: [c] })),
  ...'.$()[{*+?|\\^/'.split('').map((c) => ({ src: '\\' + c, ex: [c] })),
  { src: '\\d', ex: ['0', '5', '9'] }, { src: '\\w', ex: ['a', 'Z', '_', '3'] },
  { src: '[a-z]', ex: ['a', 'q', 'z'] }, { src: '[a-z0-9_]', ex: ['b', '0', '_'] },
  { src: '[A-Za-z]', ex: ['A', 'z'] }, { src: '[0-9]', ex: ['0', '9'] },
  { src: '[\\d]', ex: ['4'] }, { src: '[\\w.-]', ex: ['w', '.', '-'] },
  { src: '[-a]', ex: ['-', 'a'] }, { src: '[a-]', ex: ['a', '-'] },
  { src: '[@.]', ex: ['@', '.'] }, { src: '[a-c0-5_]', ex: ['c', '5'] },
  { src: '[.]', ex: ['.'] }, { src: '[$^]', ex: ['$', '^'] }, { src: '[\\]]', ex: [']'] },
  { src: '[\\-x]', ex: ['-', 'x'] }, { src: '[/]', ex: ['/'] }, { src: '[*+?]', ex: ['+'] },
  { src: '[{}()|]', ex: ['(', '|'] }, { src: '[a^]', ex: ['^'] }, { src: '[--/]', ex: ['-', '.'] },
  // not simple: PCRE2 answers
  { src: '.', ex: ['a', 'é'] }, { src: '(?:ab|c)', ex: ['ab', 'c'] }, { src: '[^a]', ex: ['b', 'é'] },
  { src: '\\s', ex: [' ', '\t'] }, { src: '\\D', ex: ['x'] }, { src: '\\W', ex: ['-'] },
  { src: 'é', ex: ['é'] }, { src: '[é-ë]', ex: ['ê'] }, { src: '\\u0041', ex: ['A'] },
  { src: '(a)', ex: ['a'] }, { src: '\\p{L}', ex: ['é', 'a'] },
];
const QUANTS = [
  ...Array(6).fill({ src: '', min: 1, max: 1 }),
  { src: '?', min: 0, max: 1 }, { src: '*', min: 0, max: 3 }, { src: '+', min: 1, max: 3 },
  { src: '{2}', min: 2, max: 2 }, { src: '{1,3}', min: 1, max: 3 }, { src: '{0,}', min: 0, max: 3 },
  { src: '{2,}', min: 2, max: 4 }, { src: '{0}', min: 0, max: 0 }, { src: '??', min: 0, max: 1 },
  { src: '*?', min: 0, max: 2 }, { src: '+?', min: 1, max: 2 }, { src: '{1,2}?', min: 1, max: 2 },
];
const NOISE = 'abzAZ079_-@.$()[{*+?|\\^/ :é٣😀\n\t'.match(/./gsu);

function randomPattern() {
  const atoms = Array.from({ length: int(0, 4) }, () => [pick(ATOMS), pick(QUANTS)]);
  const start = rand() < 0.5;
  const end = rand() < 0.5;
  const src = (start ? '^' : '') + atoms.map(([a, q]) => a.src + q.src).join('') + (end ? '$' : '');
  const subjects = [];
  for (let k = 0; k < 6; k++) {
    // built to match (then perhaps spoiled), with noise around when unanchored
    let s = atoms.map(([a, q]) => Array.from({ length: int(q.min, q.max) }, () => pick(a.ex)).join('')).join('');
    if (rand() < 0.3) s = s.slice(0, int(0, s.length));
    if (rand() < 0.3) s += pick(NOISE);
    if (rand() < 0.3) s = pick(NOISE) + s;
    subjects.push(s);
  }
  for (let k = 0; k < 4; k++)
    subjects.push(Array.from({ length: int(0, 8) }, () => pick(NOISE)).join(''));
  return { src, subjects };
}

async function testPatterns(c) {
  const ps = [], ss = [], want = [];
  let invalid = 0;
  for (let i = 0; i < PATTERNS; i++) {
    const { src, subjects } = randomPattern();
    let re;
    try {
      re = new RegExp(src, 'u');
    } catch (e) {
      invalid++;                    // not ECMA-262 with "u": not compared
      continue;
    }
    for (const s of subjects) {
      ps.push(src);
      ss.push(s);
      want.push(re.test(s));
    }
  }
  note(`patterns: ${ps.length} pattern/subject pairs (${invalid} generated patterns are not valid ECMA-262 and were left out)`);
  await c.query('CREATE TEMP TABLE js_pat AS SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(p, s, id)', [ps, ss]);
  const r = await c.query(`SELECT id, pg_temp.js_try(jsonb_build_object('pattern', p), to_jsonb(s)) AS got
                             FROM js_pat ORDER BY p, id`);
  const bad = [];
  for (const row of r.rows) {
    const i = Number(row.id) - 1;
    if (row.got !== String(want[i])) bad.push(`${JSON.stringify(ps[i])} on ${JSON.stringify(ss[i])}: RegExp says ${want[i]}, got ${row.got}`);
  }
  check(bad.length === 0 && r.rows.length === ps.length,
    `pattern: ${r.rows.length} pattern/subject pairs match as ECMA-262 (JavaScript's RegExp, "u" flag) says`,
    bad.slice(0, 20).join('\n'));
}

// -- schemas ------------------------------------------------------------------
const KEYS = ['a', 'b', 'c', 'dd', 'eee', 'k1', 'x-y'];
// past 32 members or items, jsonb stores some offsets instead of lengths
const MANY = Array.from({ length: 40 }, (_, i) => `m${i}`);
const SIMPLE_PATTERNS = ['^[a-z]+$', '^d', '[0-9]', '^.$', 'e{2}', '^(?:a|b)$', '^\\w{1,3}$'];
const SCALARS = [0, 1, 1.5, -2, 100, 'a', 'b', '', 'ab', true, false, null];

function randomSchema(d, draft7, noRef = false) {
  if (d > 3 || rand() < 0.08) return pick([true, false, {}, { type: 'string' }]);
  const s = {};
  const kinds = Array.from({ length: int(1, 4) }, () => pick(
    ['type', 'type', 'object', 'object', 'object', 'array', 'array', 'string', 'number', 'enum', 'const', 'comb', 'comb', 'ref']));
  for (const k of kinds) {
    switch (k) {
      case 'type':
        s.type = pick(['object', 'array', 'string', 'integer', 'number', 'boolean', 'null', ['string', 'null'], ['integer', 'object']]);
        break;
      case 'object':
        if (rand() < 0.7) {
          s.properties = {};
          for (const key of KEYS) if (rand() < 0.35) s.properties[key] = randomSchema(d + 1, draft7, noRef);
          if (rand() < 0.1)
            for (const key of MANY) if (rand() < 0.3) s.properties[key] = pick([{ type: 'integer' }, { type: 'string' }, { maximum: 20 }, false]);
        }
        if (rand() < 0.5) s.required = KEYS.filter(() => rand() < 0.2).concat(rand() < 0.1 ? ['a', 'a'] : []);
        if (rand() < 0.5) s.additionalProperties = rand() < 0.5 ? false : randomSchema(d + 1, draft7, noRef);
        if (rand() < 0.2) s.patternProperties = { [pick(SIMPLE_PATTERNS)]: randomSchema(d + 1, draft7, noRef) };
        if (rand() < 0.15) s.minProperties = int(0, 3);
        if (rand() < 0.15) s.maxProperties = int(0, 4);
        if (rand() < 0.1) s.propertyNames = { maxLength: int(1, 3) };
        if (rand() < 0.1) s[draft7 ? 'dependencies' : 'dependentRequired'] = { a: ['b'] };
        break;
      case 'array':
        if (rand() < 0.6) s.items = randomSchema(d + 1, draft7, noRef);
        if (rand() < 0.3) {
          const prefix = [randomSchema(d + 1, draft7, noRef), randomSchema(d + 1, draft7, noRef)];
          if (draft7 && !Array.isArray(s.items)) {
            if (s.items !== undefined) s.additionalItems = s.items;
            s.items = prefix;
          } else if (!draft7) s.prefixItems = prefix;
        }
        if (rand() < 0.25) {
          s.contains = randomSchema(d + 1, draft7, noRef);
          if (!draft7 && rand() < 0.5) s.minContains = int(0, 2);
          if (!draft7 && rand() < 0.3) s.maxContains = int(1, 2);
        }
        if (rand() < 0.4) s.uniqueItems = true;
        if (rand() < 0.2) s.minItems = int(0, 2);
        if (rand() < 0.2) s.maxItems = int(0, 4);
        break;
      case 'string':
        if (rand() < 0.5) s.minLength = int(0, 3);
        if (rand() < 0.5) s.maxLength = int(0, 4);
        if (rand() < 0.5) s.pattern = pick(SIMPLE_PATTERNS);
        break;
      case 'number':
        if (rand() < 0.5) s.minimum = pick([0, 1, -1.5, 2]);
        if (rand() < 0.5) s.maximum = pick([1, 10, 100.5]);
        if (rand() < 0.3) s.exclusiveMinimum = pick([0, 1]);
        if (rand() < 0.2) s.multipleOf = pick([0.5, 2, 3]);
        break;
      case 'enum':
        s.enum = Array.from({ length: int(1, 4) }, () => (rand() < 0.3 ? { a: pick(SCALARS) } : rand() < 0.2 ? [pick(SCALARS)] : pick(SCALARS)));
        break;
      case 'const':
        s.const = rand() < 0.3 ? [1, 'a'] : pick(SCALARS);
        break;
      case 'comb': {
        const w = pick(['allOf', 'anyOf', 'oneOf', 'not', 'if']);
        if (w === 'not') s.not = randomSchema(d + 1, draft7, noRef);
        else if (w === 'if') {
          s.if = randomSchema(d + 1, draft7, noRef);
          if (rand() < 0.8) s.then = randomSchema(d + 1, draft7, noRef);
          if (rand() < 0.8) s.else = randomSchema(d + 1, draft7, noRef);
        } else s[w] = [randomSchema(d + 1, draft7, noRef), randomSchema(d + 1, draft7, noRef)];
        break;
      }
      case 'ref':
        // not inside leaf itself: a reference loop is an error (schema.sql tests it)
        if (!noRef && (!draft7 || Object.keys(s).length === 0)) s.$ref = pick(['#/$defs/node', '#/$defs/leaf']);
        break;
    }
  }
  return s;
}

function randomValue(d) {
  const r = rand();
  if (d > 3 || r < 0.35) return pick(SCALARS.concat([2.0, 3, 1e3, 'aaaa', 'd1']));
  if (r < 0.55) {
    const n = int(0, 4);
    const a = Array.from({ length: n }, () => randomValue(d + 1));
    if (n > 0 && rand() < 0.3) a.push(a[0]);  // a duplicate, for uniqueItems
    return a;
  }
  if (rand() < 0.05)
    return Array.from({ length: int(30, 45) }, () => pick(SCALARS.concat([{ a: 1 }, 7, 'm1'])));
  const o = {};
  for (const key of KEYS) if (rand() < 0.4) o[key] = randomValue(d + 1);
  if (rand() < 0.1) for (const key of MANY) if (rand() < 0.9) o[key] = pick([1, 25, 'x', null]);
  if (rand() < 0.2) o.kids = [randomValue(d + 1), { a: 1, kids: [] }];
  return o;
}

async function testSchemas(c) {
  let rows = 0, inplaceWorthy = 0;
  const bad = [];
  for (let i = 0; i < SCHEMAS; i++) {
    const draft7 = rand() < 0.25;
    const root = randomSchema(0, draft7);
    const schema = typeof root === 'boolean' ? root : Object.assign(
      draft7 ? { $schema: 'http://json-schema.org/draft-07/schema#', definitions: undefined } : {},
      root,
      {
        $defs: {
          leaf: randomSchema(2, draft7, true),
          node: { type: 'object', required: ['a'], additionalProperties: rand() < 0.5,
                  properties: { a: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' } } } },
        },
      });
    if (draft7 && typeof schema === 'object') delete schema.definitions;
    const values = Array.from({ length: 30 }, () => randomValue(0));
    // several rows of one shape in a row: the shapes' case
    for (let k = 0; k < 10; k++) values.push(values[k % 3]);
    await c.query('DROP TABLE IF EXISTS js_val');
    await c.query('CREATE TEMP TABLE js_val AS SELECT * FROM unnest($1::jsonb[]) WITH ORDINALITY AS t(v, id)',
      [values.map((v) => JSON.stringify(v))]);
    const lit = JSON.stringify(schema).replace(/'/g, "''");
    let r;
    try {
      r = await c.query(`SELECT id, state.json_schema_validate('${lit}'::jsonb, v) AS yes,
                                NOT EXISTS (SELECT FROM state.json_schema_errors('${lit}'::jsonb, v)) AS no_errors
                           FROM js_val ORDER BY id`);
    } catch (e) {
      bad.push(`schema ${JSON.stringify(schema)}: ${e.message}`);
      continue;
    }
    for (const row of r.rows) {
      rows++;
      if (row.yes) inplaceWorthy++;
      if (row.yes !== row.no_errors)
        bad.push(`schema ${JSON.stringify(schema)}\n  value ${JSON.stringify(values[Number(row.id) - 1])}: valid ${row.yes}, errors ${!row.no_errors}`);
    }
  }
  note(`schemas: ${SCHEMAS} schemas, ${rows} values (${inplaceWorthy} valid)`);
  check(bad.length === 0, `schema: for ${rows} values of ${SCHEMAS} random schemas, valid exactly when json_schema_errors finds none`,
    bad.slice(0, 5).join('\n'));
}

(async () => {
  const c = new pg.Client();
  await c.connect();
  try {
    await c.query('SET client_min_messages = warning');
    await c.query('CREATE EXTENSION IF NOT EXISTS durable_state');
    await c.query(`CREATE FUNCTION pg_temp.js_try(s jsonb, d jsonb) RETURNS text LANGUAGE plpgsql AS $f$
                   BEGIN RETURN state.json_schema_validate(s, d)::text;
                   EXCEPTION WHEN others THEN RETURN 'ERROR: ' || SQLERRM; END $f$`);
    note(`seed ${SEED}`);
    await testPatterns(c);
    await testSchemas(c);
  } catch (e) {
    check(false, 'the test ran', e.stack);
  } finally {
    await c.end();
  }
  console.log(summary());
  process.exitCode = counts.failed ? 1 : 0;
})();
