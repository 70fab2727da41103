'use strict';
// The seeded PRNG of the test scripts (test/t/*.js) is the Node client's
// test helper (clients/node/test/helpers/prng.js): one copy, kept in the
// client package so that its tests need nothing outside it.
module.exports = require('../../clients/node/test/helpers/prng.js');
