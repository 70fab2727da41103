// test/node/tap.js -- the `ok - ...` / `not ok - ...` lines, `# notes` and the
// final `N passed, M failed` of the Node test scripts in test/t.
'use strict';

const counts = { passed: 0, failed: 0 };

function check(ok, what, detail) {
  if (ok) {
    counts.passed++;
    console.log(`ok - ${what}`);
  } else {
    counts.failed++;
    console.log(`not ok - ${what}`);
    if (detail) console.log(`    ${String(detail).split('\n').join('\n    ')}`);
  }
  return ok;
}
const note = (s) => console.log(`# ${s}`);
const summary = () => `${counts.passed} passed, ${counts.failed} failed`;

module.exports = { check, note, summary, counts };
