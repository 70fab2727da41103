// bench/schema_ajv.sh's client: JSON Schema validations per second, the
// extension (state.json_schema_validate over a table of values, in the
// server) beside ajv (compiled, in this process), the same schema and the
// same values, in the same run.
//
//   node bench/schema_ajv.mjs      (PG* point to a database with durable_state)
//
// Variants: the profile schema of bench/schema.sql with formats as
// annotations ("formats off"), with formats asserted ("formats on": ajv with
// ajv-formats), and with an alternation in the handle's pattern (formats
// off).  Each is timed BENCH_AJV_REPS times, ajv and the extension back to
// back, their order alternating; medians reported.  The extension's time is
// given as is and net of the scan that feeds it (count(*) over the same
// values); ajv's excludes JSON parsing (the values are parsed once before
// the clock starts) and compiling (reported apart).
import { createRequire } from 'node:module';

const require = createRequire(new URL('./package.json', import.meta.url));
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats');
const pg = require('pg');

const N = Number(process.env.BENCH_AJV_N || 100000);
const REPS = Number(process.env.BENCH_AJV_REPS || 3);
const say = (s) => process.stderr.write(`bench/schema_ajv: ${s}\n`);

const profile = {
  type: 'object',
  required: ['id', 'email', 'name', 'created'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    email: { type: 'string', format: 'email', maxLength: 254 },
    name: { type: 'string', minLength: 1, maxLength: 100 },
    handle: { type: 'string', pattern: '^@[a-z0-9_]{2,30}$' },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    score: { type: 'number', minimum: 0 },
    created: { type: 'string', format: 'date-time' },
    tags: { type: 'array', items: { type: 'string' }, uniqueItems: true, maxItems: 10 },
  },
  additionalProperties: false,
};
const alternation = structuredClone(profile);
alternation.properties.handle.pattern = '^@(?:[a-z][a-z0-9_]{1,29}|[0-9]{2,30}|_[a-z0-9]+)$';

const variants = [
  { name: 'formats off', schema: profile, formats: false, target: 1.0 },
  { name: 'formats on', schema: profile, formats: true, target: 1.0 },
  { name: 'alternation pattern, formats off', schema: alternation, formats: false, target: 0.5 },
];

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const now = () => Number(process.hrtime.bigint()) / 1e6;

const c = new pg.Client();
await c.connect();
await c.query('SET client_min_messages = warning');
await c.query('CREATE EXTENSION IF NOT EXISTS durable_state');
await c.query('DROP SCHEMA IF EXISTS bench_ajv CASCADE');
await c.query('CREATE SCHEMA bench_ajv');
// the values of bench/schema.sql
await c.query(`CREATE TABLE bench_ajv.vals AS
  SELECT jsonb_build_object('id', gen_random_uuid()::text,
                            'email', 'user' || g || '@example.com',
                            'name', 'User ' || g,
                            'handle', '@user_' || g,
                            'age', g % 100,
                            'score', g * 1.5,
                            'created', '2025-01-31T12:00:00.000Z',
                            'tags', jsonb_build_array('t' || (g % 7), 'u' || (g % 11))) AS v
    FROM generate_series(1, $1::int) g`, [N]);
await c.query('VACUUM ANALYZE bench_ajv.vals');
const values = (await c.query('SELECT v FROM bench_ajv.vals')).rows.map((r) => r.v);
say(`${values.length} values`);

function compile(v) {
  const t0 = now();
  const ajv = new Ajv2020({ strict: false, validateFormats: v.formats });
  if (v.formats) addFormats(ajv);
  const fn = ajv.compile(v.schema);
  return { fn, ms: now() - t0 };
}

function runAjv(fn) {
  let ok = 0;
  const t0 = now();
  for (let i = 0; i < values.length; i++) if (fn(values[i])) ok++;
  return { ms: now() - t0, ok };
}

async function runSql(v) {
  const t0 = now();
  const r = await c.query(
    'SELECT count(*) FILTER (WHERE state.json_schema_validate($1::jsonb, v, $2)) AS ok FROM bench_ajv.vals',
    [JSON.stringify(v.schema), v.formats]);
  return { ms: now() - t0, ok: Number(r.rows[0].ok) };
}

async function runScan() {
  const t0 = now();
  await c.query('SELECT count(*) FILTER (WHERE v IS NOT NULL) FROM bench_ajv.vals');
  return now() - t0;
}

const results = [];
for (const v of variants) {
  const { fn, ms: compileMs } = compile(v);
  // warm-up: the extension caches the compiled schema per backend, ajv JITs
  await runSql(v);
  runAjv(fn);
  const r = { v, compileMs, ajv: [], ext: [], scan: [], okAjv: 0, okExt: 0 };
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? ['ajv', 'ext'] : ['ext', 'ajv'];
    for (const which of order) {
      if (which === 'ajv') {
        const a = runAjv(fn);
        r.ajv.push(a.ms);
        r.okAjv = a.ok;
      } else {
        const e = await runSql(v);
        r.ext.push(e.ms);
        r.okExt = e.ok;
        r.scan.push(await runScan());
      }
    }
    say(`${v.name}: run ${rep + 1}/${REPS}: ajv ${r.ajv.at(-1).toFixed(1)} ms, extension ${r.ext.at(-1).toFixed(1)} ms (scan ${r.scan.at(-1).toFixed(1)} ms)`);
  }
  results.push(r);
}
await c.query('DROP SCHEMA bench_ajv CASCADE');
await c.end();

const rate = (ms) => Math.round(values.length / (ms / 1000));
const fmt = (n) => n.toLocaleString('en-US');
console.log(`\n  ${values.length} values of the 8-property profile schema (bench/schema.sql), medians of ${REPS} runs, interleaved;`);
console.log('  the extension: state.json_schema_validate(schema, v, assert_formats) over a table, in the server (its');
console.log('  rate net of the scan that feeds it in brackets); ajv 8.20.0 (Ajv2020, ajv-formats 3.0.1 when formats are');
console.log('  on), compiled once, over the same values already parsed in Node.\n');
console.log(`  ${'variant'.padEnd(36)} ${'extension/s'.padStart(12)} ${'(net)'.padStart(12)} ${'ajv/s'.padStart(12)} ${'ajv compile'.padStart(12)}   ratio (net)   target`);
for (const r of results) {
  const ext = median(r.ext);
  const net = Math.max(ext - median(r.scan), 1e-3);
  const aj = median(r.ajv);
  const ratio = aj / ext;
  const ratioNet = aj / net;
  console.log(`  ${r.v.name.padEnd(36)} ${fmt(rate(ext)).padStart(12)} ${('(' + fmt(rate(net)) + ')').padStart(12)} ${fmt(rate(aj)).padStart(12)} ${(r.compileMs.toFixed(1) + ' ms').padStart(12)}   ${ratio.toFixed(2)}x (${ratioNet.toFixed(2)}x)   >= ${r.v.target.toFixed(1)}x ${ratio >= r.v.target ? 'met' : 'NOT met'}`);
  if (r.okAjv !== values.length || r.okExt !== values.length) {
    console.log(`  !! ${r.v.name}: valid values: ajv ${r.okAjv}, extension ${r.okExt}, of ${values.length}`);
  }
}
