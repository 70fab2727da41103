'use strict';
// Helpers the test scripts share for comparing events and values.

/* JSON with sorted object keys (jsonb does not keep member order). */
function canon(v) {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/* The event as the log keeps it: without the offset header changes() adds. */
function bare(ev) {
  const h = { ...ev.headers };
  delete h.offset;
  return { ...ev, headers: h };
}

module.exports = { canon, bare };
