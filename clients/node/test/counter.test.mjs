// Two app-server processes increment the same counter 10k times each,
// four at a time: it must end at exactly 20k, with one logged upsert per
// increment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DurableState, setupStream } from './helpers.mjs';

const N = Number(process.env.DS_NODE_INCREMENTS || 10000);
const child = fileURLToPath(new URL('./increment_child.mjs', import.meta.url));

function run(stream) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, stream, String(N)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}`))));
  });
}

test('two processes increment one counter without losing an update', async (t) => {
  const { stream, drop } = await setupStream('t_ctr', [['counter', "mode => 'lenient'"]]);
  const ds = new DurableState({ stream });
  t.after(async () => {
    await ds.close();
    await drop();
  });
  const started = Date.now();
  const [a, b] = await Promise.all([run(stream), run(stream)]);
  const seconds = (Date.now() - started) / 1000;
  assert.equal(a.done + b.done, 2 * N);
  const v = await ds.getVersioned('counter', 'hits');
  assert.deepStrictEqual(v.value, { n: 2 * N });
  assert.equal(v.version, 2 * N);
  assert.equal(Number(await ds.tail()), 2 * N, 'one logged event per increment');
  // every value returned was unique: each increment saw the previous one
  const all = new Set([...a.values, ...b.values]);
  assert.equal(all.size, 2 * N);
  assert.equal(Math.max(...all), 2 * N);
  t.diagnostic(`${2 * N} increments from 2 processes in ${seconds.toFixed(1)} s (${Math.round((2 * N) / seconds)}/s)`);
});
