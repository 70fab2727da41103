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
module.exports = { rng };
