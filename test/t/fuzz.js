'use strict';
/*
 * test/t/fuzz.js -- malformed and hostile events at scale.
 *
 * A seeded generator (DS_FUZZ_SEED) mutates valid events DS_FUZZ_EVENTS
 * times (default 100,000): wrong member types, missing and unknown members
 * and headers, unknown operations and controls, deep nesting, huge strings
 * and keys, NUL, lone surrogates and other invalid escapes, numbers beyond
 * every range, duplicate members, values that break a typed table's columns
 * or its JSON Schema, control events out of order, stale old_values...
 * Each mutated event goes into a batch behind a valid event, through
 * state.apply (jsonb) or state.apply_text (raw NDJSON text, so that the
 * server parses what the generator wrote, invalid escapes included), on
 * four connections with durable_state.max_event_bytes = 64 kB and
 * max_batch_events = 50.  One connection is a role under a row-level
 * security policy on the typed collection (rows with n % 7 = 3 hidden), so
 * the checks of src/rls.c see the mutants too; its refusals are 42501.
 * Checks:
 *   - every call either applies its whole batch or fails with a clear
 *     error: an SQLSTATE of the data/constraint/limit classes, never
 *     XX000 (internal error) or a lost connection, and a message naming
 *     the event (index, type, key) when the event could be parsed;
 *   - the server is up at the end, and nothing partial is left: the log
 *     holds exactly the events of the calls that succeeded, and each
 *     collection's table is the fold of its log.
 *   - apply_text's JSON parser agrees with jsonb_in: DS_FUZZ_DIFF_EVENTS
 *     (default 3,000) more mutants, each sent as NDJSON to apply_text and
 *     as jsonb to apply in rolled-back transactions, have the same outcome
 *     (except a line over max_event_bytes, which apply_text refuses before
 *     parsing it, where apply measures the jsonb).
 * Runs in its own database ds_fuzz.  Prints `N passed, M failed`.
 */
const path = require('node:path');
const pg = require(path.join(__dirname, '../node/node_modules/pg'));

const EVENTS = Number(process.env.DS_FUZZ_EVENTS || 100000);
const SEED = Number(process.env.DS_FUZZ_SEED || 20261125);
const CONNS = 4;
const DIFF_EVENTS = Number(process.env.DS_FUZZ_DIFF_EVENTS || 3000);
const DB = 'ds_fuzz';

const { check, summary, counts } = require(path.join(__dirname, '../node/tap.js'));

const { rng } = require(path.join(__dirname, '../node/prng.js'));
const rand = rng(SEED);
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (n) => Math.floor(rand() * n);

/* Raw JSON text fragments: some are not valid JSON at all. */
const nasty = [
  'null', 'true', '0', '-0', '1e400', '-1e400', '1e-400', '123456789012345678901234567890', '0.1e1',
  '"\\u0000"', '"a\\u0000b"', '"\\ud800"', '"\\udc00x"', '"\\ud800\\u0041"', '"\\uZZZZ"', '"\\x41"', '"tab\there"',
  '"' + 'é'.repeat(40000) + '"', '"' + 'x'.repeat(70000) + '"', '[]', '{}', '[' + '['.repeat(3000) + ']'.repeat(3000) + ']',
  '{"a":' .repeat(2000) + '1' + '}'.repeat(2000), '"; DROP TABLE fz_sentinel; --"', '"\\"quoted\\" \\\\ back"',
  '"\u2028\u2029"', '"😀"', 'NaN', 'Infinity', '01', '.5', '1.', '"unterminated', '{"a" 1}', '{,}', '[1,]',
];
const ops = ['insert', 'update', 'upsert', 'delete'];
const badOps = ['merge', '', 'INSERT', 'replace', 'remove', ' upsert', 'upsert\u0000'];
const types = ['fz_doc', 'fz_typed', 'fz_cas'];

function validEvent(i) {
  const type = pick(types);
  const key = `k${int(300)}`;
  const op = type === 'fz_cas' ? 'upsert' : pick(['upsert', 'upsert', 'insert', 'delete']);
  const value = type === 'fz_doc' ? { i, v: 'x' } : { n: int(1000), s: `s${i}`, b: rand() < 0.5 };
  const e = { type, key, headers: { operation: op } };
  if (op !== 'delete') e.value = value;
  return e;
}

/* One mutated event as raw JSON text. */
function mutant(i) {
  const e = validEvent(i);
  const m = int(24);
  const t = JSON.stringify;
  switch (m) {
    case 0: delete e.type; break;
    case 1: e.type = pick([5, null, '', [], {}, 'x'.repeat(100000), 'no_such_type', 'fz_doc\u0000']); break;
    case 2: delete e.key; break;
    case 3: e.key = pick([5, null, '', [], {}, true, 'k'.repeat(70000)]); break;
    case 4: delete e.headers; break;
    case 5: e.headers = pick([null, 'upsert', [], 5]); break;
    case 6: e.headers.operation = pick(badOps); break;
    case 7: e.headers.control = pick(['reset', 'snapshot-end', 'snapshot-start', 'nope', '', 5]); break;
    // a valid control event now and then (a reset only rarely: it empties the stream)
    case 8: e.headers = { control: rand() < 0.05 ? 'reset' : pick(['snapshot-end', 'snapshot-start', 'bogus']) };
      delete e.type; delete e.key; delete e.value; break;
    case 9: e.headers.txid = pick([5, '', null, {}, 't'.repeat(70000)]); break;
    case 10: e.headers[pick(['unknown', 'offset', 'timestamp', 'from', 'Operation'])] = pick([5, 'x', null, {}]); break;
    case 11: e[pick(['extra', 'Type', 'values', 'old'])] = 1; break;
    case 12: e.old_value = pick([{ n: -1 }, 'stale', null, 5]); e.type = 'fz_cas'; e.headers.operation = 'update'; break;
    case 13: e.value = { n: pick(['1', 1.5, 1e300, -1e300, 2 ** 63, null, [], true, 'NaN']), s: 's', b: true }; e.type = 'fz_typed'; e.headers.operation = 'upsert'; break;
    case 14: e.value = { n: 1, s: 'y'.repeat(60 + int(100)), b: pick([1, 'true', null]) }; e.type = 'fz_typed'; e.headers.operation = 'upsert'; break;
    case 15: e.value = { n: 1, s: 's', b: true, id: pick(['other', 5, null]) }; e.type = 'fz_typed'; e.headers.operation = 'upsert'; break;
    case 16: e.value = pick([5, 'str', null, [1, 2], true]); e.type = pick(['fz_typed', 'fz_doc']); e.headers.operation = 'upsert'; break;
    case 17: delete e.value; e.headers.operation = pick(['insert', 'upsert', 'update']); break;
    case 18: e.headers.operation = pick(ops); e.value = e.value ?? {}; e.value.deep = JSON.parse('['.repeat(50) + ']'.repeat(50)); break;
    default: {
      // raw text surgery: splice a nasty fragment somewhere
      const text = t(e);
      const frag = pick(nasty);
      const where = pick(['type', 'key', 'value', 'operation', 'txid', 'whole', 'dup']);
      if (where === 'whole') return frag;
      if (where === 'dup') return text.replace(/^\{/, `{"type":${frag},`);
      if (where === 'txid') return text.replace(/"headers":\{/, `"headers":{"txid":${frag},`);
      if (where === 'operation') return text.replace(/"operation":"[a-z]+"/, `"operation":${frag}`);
      if (where === 'value') return text.replace(/"headers"/, `"value":${frag},"headers"`);
      return text.replace(new RegExp(`"${where}":"[^"]*"`), `"${where}":${frag}`);
    }
  }
  return t(e);
}

/*
 * apply_text parses JSON text with its own parser (src/jsontext.c), which
 * must agree with jsonb_in on every mutant: the same mutant sent as NDJSON
 * to apply_text and as jsonb to apply gives the same outcome (the same
 * SQLSTATE and message, apply_text's naming the line too; or the same
 * logged events), each in a transaction that is rolled back.
 */
async function parserDifferential() {
  const n = Math.min(DIFF_EVENTS, EVENTS);
  const cl = new pg.Client({ database: DB });
  await cl.connect();
  await cl.query("SET durable_state.max_event_bytes = '64kB'; SET durable_state.notify = off; " +
                 'SET log_min_messages = fatal; SET log_min_error_statement = panic');
  const outcome = async (sql, arg) => {
    await cl.query('BEGIN');
    try {
      const r = await cl.query(sql, [arg]);
      const ev = await cl.query("SELECT string_agg(event::text, '|' ORDER BY seq) AS e FROM " +
                                "(SELECT event, seq FROM state.log_events WHERE stream = 'fz' ORDER BY seq DESC LIMIT $1) x",
                                [Number(r.rows[0].applied)]);
      return `applied ${r.rows[0].applied}: ${ev.rows[0].e}`;
    } catch (err) {
      // apply_text names the line; apply($1::jsonb) fails in the cast, before naming an event,
      // so an error naming only the event (not its type or key) is compared without the name
      return `${err.code} ${err.message.replace(/^(event \d+) \(line \d+\)/, '$1').replace(/^event \d+: /, '')}`;
    } finally {
      await cl.query('ROLLBACK');
    }
  };
  let differ = 0;
  const examples = [];
  for (let i = 0; i < n; i++) {
    const good = JSON.stringify(validEvent(EVENTS + i));
    const badText = mutant(EVENTS + i);
    const asText = await outcome("SELECT applied FROM state.apply_text($1, 'fz')", `${good}\n${badText}`);
    const asJsonb = await outcome("SELECT applied FROM state.apply($1::jsonb, 'fz')", `[${good},${badText}]`);
    // a line over max_event_bytes is refused before it is parsed (apply measures the jsonb instead)
    if (asText !== asJsonb && !/^54000 event \d+ is \d+ bytes/.test(asText)) {
      differ++;
      if (examples.length < 3) examples.push(`${badText.slice(0, 120)}\n      apply_text: ${asText.slice(0, 200)}\n      apply: ${asJsonb.slice(0, 200)}`);
    }
  }
  await cl.end();
  check(differ === 0, `apply_text's parser agrees with jsonb_in on ${n} mutants (same outcome as apply of the same text as jsonb)`,
    `${differ} differ:\n    ${examples.join('\n    ')}`);
}

const ALLOWED = /^(22|23|40001|54|55000|P0002|0A000|42704|42P01|25|42501)/;

async function main() {
  const admin = new pg.Client();
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  const setup = new pg.Client({ database: DB });
  await setup.connect();
  await setup.query(`
    SET client_min_messages = warning;
    CREATE EXTENSION durable_state;
    CREATE TABLE fz_sentinel (x int);
    SELECT state.create_collection('fz_doc', stream => 'fz', mode => 'lenient');
    SELECT state.create_collection('fz_typed', stream => 'fz', mode => 'lenient', schema => '{"type": "object",
      "properties": {"id": {"type": "string"}, "n": {"type": "integer"}, "s": {"type": "string", "maxLength": 100},
                     "b": {"type": "boolean"}}, "additionalProperties": false}');
    SELECT state.create_collection('fz_cas', stream => 'fz', mode => 'lenient', check_old_value => true);
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fz_tenant') THEN CREATE ROLE fz_tenant IN ROLE state_writer; END IF;
    END $$;
    GRANT SELECT, INSERT, UPDATE, DELETE ON fz_doc, fz_typed, fz_cas TO fz_tenant;
    ALTER TABLE fz_typed ENABLE ROW LEVEL SECURITY;
    CREATE POLICY fz_some ON fz_typed USING (n IS NULL OR n % 7 <> 3);`);
  await setup.end();

  const counts = new Map();
  const bad = [];
  let applied = 0;
  let calls = 0;
  let unnamed = 0;
  let next = 0;
  const conns = [];
  for (let c = 0; c < CONNS; c++) {
    const cl = new pg.Client({ database: DB });
    await cl.connect();
    // (the expected errors are not written to the server log: 100k of them would bury it)
    await cl.query("SET durable_state.max_event_bytes = '64kB'; SET durable_state.max_batch_events = 50; " +
                   "SET durable_state.notify = off; SET log_min_messages = fatal; SET log_min_error_statement = panic");
    if (c === 0) await cl.query('SET ROLE fz_tenant');
    conns.push(cl);
  }
  const started = Date.now();
  await Promise.all(conns.map(async (cl) => {
    while (next < EVENTS) {
      const i = next++;
      const good = JSON.stringify(validEvent(i));
      const badText = mutant(i);
      const mode = rand();
      let sql;
      let arg;
      if (mode < 0.5) {
        sql = "SELECT applied FROM state.apply_text($1, 'fz')";
        arg = `${good}\n${badText}`;
      } else if (mode < 0.95) {
        sql = "SELECT applied FROM state.apply($1::jsonb, 'fz')";
        arg = `[${good},${badText}]`;
      } else {
        // a batch over max_batch_events
        sql = "SELECT applied FROM state.apply_text($1, 'fz')";
        arg = Array.from({ length: 51 }, () => good).join('\n');
      }
      calls++;
      try {
        const r = await cl.query(sql, [arg]);
        applied += Number(r.rows[0].applied);
        counts.set('applied', (counts.get('applied') || 0) + 1);
      } catch (err) {
        if (!err.code) {
          bad.push(`no SQLSTATE (connection lost?) for ${badText.slice(0, 200)}: ${err.message}`);
          throw err;
        }
        counts.set(err.code, (counts.get(err.code) || 0) + 1);
        if (!ALLOWED.test(err.code)) bad.push(`${err.code} ${err.message.slice(0, 200)} for ${badText.slice(0, 200)}`);
        else if (!/^(event \d+|line \d+|batch has|end of batch)/.test(err.message) &&
                 !/type json|Unicode|escape sequence|stack depth/.test(err.message)) {
          // not our parser's or the engine's wording, and not jsonb_in's (apply($1::jsonb) parses before the call)
          unnamed++;
          if (unnamed <= 5) console.log(`# an error that names no event: ${err.code} ${err.message.slice(0, 160)}`);
        }
      }
    }
  }));
  const seconds = (Date.now() - started) / 1000;
  for (const cl of conns) await cl.end();

  console.log(`# ${calls} calls (${EVENTS} mutated events) in ${seconds.toFixed(1)} s; outcomes: ` +
    [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', '));
  check(calls >= EVENTS, `${EVENTS} mutated events were thrown at apply/apply_text`);
  check(bad.length === 0, 'every failure is a clear error of an expected class (no XX000, no lost connection)', bad.slice(0, 5).join('\n    '));
  check(unnamed === 0, 'every error of the engine names the event (index, line, type, key) or the batch', `${unnamed} do not`);
  check((counts.get('applied') || 0) > 0 && counts.size > 5, `both outcomes happen (${counts.get('applied') || 0} batches applied, ${counts.size - 1} SQLSTATEs)`);
  check((counts.get('42501') || 0) > 0, `the role under row-level security had events refused by the policy (${counts.get('42501') || 0})`);

  await parserDifferential();

  const v = new pg.Client({ database: DB });
  await v.connect();
  const tail = Number((await v.query("SELECT state.tail('fz') AS t")).rows[0].t);
  const logged = Number((await v.query("SELECT count(*) AS n FROM state.log_events WHERE stream = 'fz'")).rows[0].n);
  check(tail === applied && logged === applied, `the log holds exactly the events of the applied batches (${applied})`,
    `tail ${tail}, logged ${logged}, applied ${applied}`);
  const fold = await v.query(`
    WITH reset AS (SELECT coalesce(max(seq), 0) AS seq FROM state.log_events
                    WHERE stream = 'fz' AND event->'headers'->>'control' = 'reset'),
         last AS (SELECT DISTINCT ON (event->>'type', event->>'key') event->>'type' AS type, event->>'key' AS key,
                         event->'headers'->>'operation' AS op, event->'value' AS value
                    FROM state.log_events WHERE stream = 'fz' AND event ? 'type' AND seq > (SELECT seq FROM reset)
                   ORDER BY event->>'type', event->>'key', seq DESC)
    SELECT count(*) FILTER (WHERE op <> 'delete' AND state.get(type, key, 'fz') IS DISTINCT FROM value
                                  AND NOT (type = 'fz_typed' AND state.get(type, key, 'fz') - 'id' = value - 'id')) AS wrong,
           count(*) FILTER (WHERE op = 'delete' AND state.get(type, key, 'fz') IS NOT NULL) AS undeleted,
           count(*) FILTER (WHERE op <> 'delete') AS live,
           (SELECT count(*) FROM fz_doc) + (SELECT count(*) FROM fz_typed) + (SELECT count(*) FROM fz_cas) AS rows,
           (SELECT count(*) FROM state.log_events WHERE stream = 'fz' AND event->'headers'->>'control' = 'reset') AS resets
      FROM last`);
  const f = fold.rows[0];
  check(Number(f.wrong) === 0 && Number(f.undeleted) === 0 && f.live === f.rows,
    `every table is the fold of the log since its last reset (${f.live} live entities, ${f.resets} resets)`,
    `${f.wrong} values differ, ${f.undeleted} deleted keys still there, ${f.live} live in the log, ${f.rows} rows`);
  const sentinel = await v.query("SELECT to_regclass('fz_sentinel') IS NOT NULL AS ok");
  check(sentinel.rows[0].ok, 'the sentinel table survived');
  await v.end();
  const alive = await admin.query('SELECT 1 AS one');
  check(alive.rows[0].one === 1, 'the server is up');
  if (!process.env.DS_FUZZ_KEEP) {
    await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    await admin.query('DROP ROLE IF EXISTS fz_tenant');
  }
  await admin.end();
}

main().catch((err) => {
  check(false, 'the fuzzer ran to the end', err.stack);
}).finally(() => {
  console.log(summary());
  process.exit(counts.failed > 0 ? 1 : 0);
});
