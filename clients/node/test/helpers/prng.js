'use strict';
// A seeded PRNG (mulberry32) for the client's tests, so that a failing
// stream can be replayed from its seed.  The repository's test scripts
// (test/t/*.js) use it too, through test/node/prng.js.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/*
 * A random JSON value drawn with rand (from rng): numbers, strings with
 * escapes and non-ASCII, booleans, null, and arrays and objects nested up
 * to three levels.
 */
function randomValue(rand, depth = 0) {
  const r = rand();
  if (depth > 2 || r < 0.15) return Math.floor(rand() * 2e6) - 1e6;
  if (r < 0.25) return Math.round(rand() * 1e4) / 100;
  if (r < 0.4) return ['', 'plain', 'ünïcødé ✓', 'line\nbreak "quoted"', '\\back'][Math.floor(rand() * 5)];
  if (r < 0.45) return rand() < 0.5;
  if (r < 0.5) return null;
  if (r < 0.65) return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
  const o = {};
  for (let i = Math.floor(rand() * 5); i > 0; i--) o[`m${Math.floor(rand() * 8)}`] = randomValue(rand, depth + 1);
  return o;
}
module.exports = { rng, randomValue };
