'use strict';
/*
 * durable-state/sink: a Durable Streams sink.  Follows a remote state
 * stream (State Protocol events in a JSON-mode Durable Stream) with the
 * official @durable-streams/client -- catch-up, then live -- and applies
 * each response to a durable_state stream in Postgres, atomically, with
 * source_offset = the remote offset after it (Stream-Next-Offset).
 *
 * Exactly once: the extension records a stream's source offset with the
 * batch that advanced it, so the sink keeps no state of its own: it
 * (re)starts from the source offset Postgres has
 * (state.streams.source_offset).  A batch of a killed sink may still be
 * running in its backend and commit after the new run read that offset
 * (the server finishes a statement whose client is gone); the new run's
 * first batch would then end past it and pass the extension's "not above
 * the recorded offset" check, repeating events.  So every transaction of
 * the sink first takes the stream's lock (an empty batch with a source
 * offset takes it: the lock any batch with a source offset takes) and
 * checks that the recorded offset is still the one its batch follows;
 * if not, it rolls back and the sink starts again from Postgres's offset.
 * A crash anywhere -- before, during or after a commit -- neither loses
 * nor repeats an event.
 *
 * A response is applied as it came, as JSON text (state.apply_text: no
 * parse here), when it is at most maxBatchBytes.  A larger one (a
 * catch-up read returns everything after its offset) is cut at its
 * members (scanned, not parsed) and applied in parts of at most maxBatchEvents events / maxBatchBytes, each
 * committed on its own, so that a long catch-up makes progress that a
 * crash keeps: a part inside the response from P records the source offset
 * "P#<events of the response applied so far, 12 digits>", which sorts
 * after P and before the response's own offset (fixed-width offsets, and
 * '#' sorts below digits and letters); the last part records the
 * response's offset.  A restart at "P#k" reads from P again and skips the
 * first k events (the remote stream is append-only).  A response that is a
 * snapshot (from '-1', starting with snapshot-start) or a resync is state,
 * not history: its parts go in ONE transaction instead.
 *
 * Resync: when the server answers 410 Gone (the offset is no longer
 * retained), the sink reads again from the start ('-1': the server's
 * snapshot or its oldest data) and applies the first response after a
 * `reset` control event, in the same batch, so the tables never hold old
 * and new state mixed.
 *
 * Lag: stats() (and onLag every lagIntervalMs) gives the offsets applied
 * and at the remote tail (a HEAD request), how far behind that is in the
 * offsets' own unit (bytes for the reference server's "<seq>_<bytes>"
 * offsets, events for durable_state's 20-digit ones) and an estimate in
 * events.
 */
const { EventEmitter } = require('node:events');
const { stream } = require('@durable-streams/client');
const { DurableState } = require('./index.js');

const DEFAULT_MAX_BATCH_BYTES = 1 << 20;
const DEFAULT_MAX_BATCH_EVENTS = 10000;

/* "P#k": k events of the response after remote offset P applied; a plain offset: k = 0. */
function splitOffset(recorded) {
  const m = /^(.*)#(\d+)$/.exec(recorded);
  return m ? { from: m[1], skip: Number(m[2]) } : { from: recorded, skip: 0 };
}
const partOffset = (from, n) => `${from}#${String(n).padStart(12, '0')}`;

/* SQLSTATE classes worth retrying the same batch for: connection, rollback, resources, shutdown. */
function retryableDbError(err) {
  const code = err && typeof err.code === 'string' ? err.code : '';
  if (/^(08|40|53|57P)/.test(code) || code === '55P03') return true;
  // node's network errors, pg's lost connections
  if (/^E[A-Z]+$/.test(code)) return true;
  return !code && /Connection terminated|connection.*(lost|ended|closed)|timeout/i.test(String(err && err.message));
}

/* The offset's unit and position: reference "<seq>_<bytes>" (bytes) or 20-digit durable_state (events). */
function offsetPosition(offset) {
  if (typeof offset !== 'string') return null;
  let m = /^(\d+)_(\d+)$/.exec(offset);
  if (m) return { unit: 'bytes', pos: Number(m[2]) };
  m = /^\d+$/.exec(offset);
  if (m) return { unit: 'events', pos: Number(offset) };
  return null;
}

/*
 * The members of the JSON array `text`, as [start, end) positions, found by
 * scanning (strings skipped with indexOf, brackets counted), without
 * parsing: JSON.parse and JSON.stringify of a 30 MB catch-up cost seconds,
 * this milliseconds.  The server checks the JSON itself; text that is not
 * an array throws.
 */
function arrayMembers(text) {
  const members = [];
  let i = 0;
  const n = text.length;
  const ws = (c) => c === 32 || c === 10 || c === 13 || c === 9;
  while (i < n && ws(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 91) throw new Error('the response is not a JSON array');
  i++;
  let depth = 0;
  let start = -1;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) { // a string: to its closing quote (one not escaped)
      if (start < 0) start = i;
      let j = i;
      for (;;) {
        j = text.indexOf('"', j + 1);
        if (j < 0) throw new Error('unterminated string in the response');
        let b = 0;
        while (text.charCodeAt(j - 1 - b) === 92) b++;
        if (b % 2 === 0) break;
      }
      i = j;
    } else if (c === 123 || c === 91) {
      if (start < 0) start = i;
      depth++;
    } else if (c === 125 || c === 93) {
      if (depth === 0) { // the array's end
        if (start >= 0) members.push([start, trimEnd(text, i)]);
        return members;
      }
      depth--;
    } else if (c === 44 && depth === 0) {
      if (start >= 0) members.push([start, trimEnd(text, i)]);
      start = -1;
    } else if (start < 0 && !ws(c)) {
      start = i;
    }
  }
  throw new Error('the response ends inside its JSON array');
}

function trimEnd(text, end) {
  while (end > 0 && /\s/.test(text[end - 1])) end--;
  return end;
}

/* A JSON array of events with a reset in front. */
function withReset(text) {
  const inner = text.trim().replace(/^\[/, '').replace(/\]$/, '').trim();
  return `[{"headers":{"control":"reset"}}${inner ? `,${inner}` : ''}]`;
}

/* Whether the event text is a snapshot-start control event. */
function isSnapshotStart(eventText) {
  if (!eventText.includes('snapshot-start')) return false;
  try {
    const ev = JSON.parse(eventText);
    return !!(ev && ev.headers && ev.headers.control === 'snapshot-start');
  } catch {
    return false;
  }
}

/* A JSON array text with no members. */
function emptyArray(text) {
  return /^\s*(\[\s*\])?\s*$/.test(text);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* The stream's source offset moved under the sink (another writer, or a killed run's last batch). */
class StaleOffsetError extends Error {
  constructor(expected, found) {
    super(`the stream's source offset is ${found}, not ${expected} as this sink expected: starting again from it`);
    this.name = 'StaleOffsetError';
  }
}

class Sink extends EventEmitter {
  /**
   * @param {object} options
   * @param {string|URL} options.url        the remote Durable Stream (JSON mode, State Protocol events)
   * @param {DurableState} [options.ds]     a client to apply with (else one on pool / connectionString / pg)
   * @param {import('pg').Pool} [options.pool]
   * @param {string} [options.connectionString]
   * @param {object} [options.pg]
   * @param {string} [options.stream]       the durable_state stream ('default')
   * @param {boolean|'sse'|'long-poll'} [options.live]  true (default): follow; false: catch up and stop
   * @param {object} [options.headers]      HTTP headers (values may be functions, as in @durable-streams/client)
   * @param {object} [options.params]       query parameters
   * @param {Function} [options.fetch]
   * @param {number} [options.maxBatchBytes]  a response larger than this is applied in parts (1 MB)
   * @param {number} [options.maxBatchEvents] events per part (10,000)
   * @param {number} [options.lagIntervalMs]  how often onLag runs (and the remote tail is asked for)
   * @param {Function} [options.onLag]      (stats) => void
   * @param {Function} [options.onBatch]    ({applied, skipped, offset, upToDate}) => void
   * @param {number} [options.retryDelayMs]   first delay before retrying after a lost connection (500)
   */
  constructor(options = {}) {
    super();
    if (!options.url) throw new TypeError('sink: url is required');
    this.url = String(options.url);
    this.stream = options.stream ?? 'default';
    this.live = options.live ?? true;
    this.headers = options.headers;
    this.params = options.params;
    this.fetch = options.fetch;
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.maxBatchEvents = options.maxBatchEvents ?? DEFAULT_MAX_BATCH_EVENTS;
    this.lagIntervalMs = options.lagIntervalMs ?? 1000;
    this.onLag = options.onLag;
    this.onBatch = options.onBatch;
    this.retryDelayMs = options.retryDelayMs ?? 500;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 10000;
    this._ownDs = !options.ds;
    this.ds = options.ds ?? new DurableState({
      pool: options.pool, connectionString: options.connectionString, pg: options.pg, stream: this.stream, max: 2,
    });
    // an idle connection that dies must not take the process down: the next query fails and is retried
    if (this._ownDs && !options.pool) this.ds.pool.on('error', (err) => this.emit('warning', err));
    this.closed = false;
    this._abort = new AbortController();
    this._session = null;
    this._resync = false;
    this._from = '-1'; // the remote offset the next response starts after
    this._skip = 0; // events of the next response applied already ("P#k")
    this._s = {
      offset: null, remoteOffset: null, upToDate: false, events: 0, batches: 0, skippedEvents: 0,
      bytes: 0, resyncs: 0, retries: 0, restarts: 0, startedAt: Date.now(), caughtUpAt: null,
    };
    this.done = null;
  }

  start() {
    if (this.done) return this.done;
    this.done = this._run().finally(() => this._stopTimer());
    this.done.catch(() => {}); // the caller may only await done
    if (this.onLag && this.lagIntervalMs > 0) {
      this._timer = setInterval(() => {
        this._refreshTail().then(() => this.onLag(this.stats()), (err) => this.emit('warning', err));
      }, this.lagIntervalMs);
      this._timer.unref();
    }
    return this.done;
  }

  _stopTimer() {
    if (this._timer) clearInterval(this._timer);
    this._timer = null;
  }

  /** The stream's source offset in Postgres ('-1' if none yet). */
  async recordedOffset(client = this.ds.pool) {
    return (await this._recordedRaw(client)) ?? '-1';
  }

  /* null if none ('!' is what the lock of _commit leaves in its own transaction when there was none). */
  async _recordedRaw(client) {
    const r = await client.query('SELECT source_offset FROM state.streams WHERE stream = $1', [this.stream]);
    const off = r.rows[0] ? r.rows[0].source_offset : null;
    return off === '!' ? null : off;
  }

  async _run() {
    let delay = this.retryDelayMs;
    let gone = 0;
    while (!this.closed) {
      try {
        this._recorded = await this._recordedRaw(this.ds.pool);
        const recorded = this._recorded ?? '-1';
        this._s.offset = recorded;
        const { from, skip } = this._resync ? { from: '-1', skip: 0 } : splitOffset(recorded);
        this._from = from;
        this._skip = skip;
        const { ended, upToDate } = await this._follow(from);
        delay = this.retryDelayMs;
        gone = 0;
        // live false: a session gives one response; a paged server needs more of them
        if (ended || (!this.live && upToDate)) break;
      } catch (err) {
        if (this.closed) break;
        if (err instanceof StaleOffsetError) {
          this._s.restarts++;
          this.emit('restart', err);
          continue;
        }
        if (err && err.status === 410) {
          // the offset is gone: again from the start, after a reset
          this._resync = true;
          this._s.resyncs++;
          this.emit('resync', err);
          if (++gone > 1) await sleep(Math.min(delay *= 2, this.maxRetryDelayMs));
          continue;
        }
        if (!retryableDbError(err) && !(err && err.status >= 500)) throw err;
        this._s.retries++;
        this.emit('retry', err);
        await sleep(delay);
        delay = Math.min(delay * 2, this.maxRetryDelayMs);
      }
    }
  }

  /*
   * One session of @durable-streams/client from `offset`; resolves to
   * {ended, upToDate} when it ends (live false: after its one response --
   * the client stops after the first response then, up to date or not --;
   * live: when closed, or when the remote stream is closed: ended), rejects
   * with the error that ended it.  The session's own `closed` does not say
   * when the last response was consumed (with live false it resolves before
   * the subscriber has seen the response), so the end is taken from the
   * responses applied.
   */
  async _follow(offset) {
    const res = await stream({
      url: this.url, offset, live: this.live, json: true, headers: this.headers, params: this.params,
      fetch: this.fetch, signal: this._abort.signal, warnOnHttp: false,
    });
    this._session = res;
    let inflight = Promise.resolve();
    try {
      return await new Promise((resolve, reject) => {
        res.subscribeText((chunk) => {
          const p = (async () => {
            if (this.closed) return;
            await this._apply(chunk);
            if (chunk.streamClosed) resolve({ ended: true, upToDate: true });
            else if (!this.live) resolve({ ended: false, upToDate: chunk.upToDate });
          })();
          p.catch(reject);
          inflight = p.catch(() => {});
          return p;
        });
        // live: the session ends when cancelled (close()) or on an error
        res.closed.then(() => {
          if (this.live || this.closed) inflight.then(() => resolve({ ended: false, upToDate: false }));
        }, reject);
      });
    } finally {
      this._session = null;
      res.cancel();
      await inflight;
    }
  }

  /* Applies one response: its events after the remote offset _from, up to chunk.offset. */
  async _apply(chunk) {
    const s = this._s;
    const from = this._from;
    const skip = this._skip;
    const resync = this._resync;
    let text = chunk.text;
    if (emptyArray(text) && !resync) {
      this._noteRemote(chunk);
      return;
    }
    if (resync && (chunk.offset === '-1' || !chunk.offset)) return;
    let r;
    if (text.length <= this.maxBatchBytes && skip === 0) {
      if (resync) text = withReset(text);
      r = await this._commit([{ text, n: null }], chunk.offset);
    } else {
      let items = arrayMembers(text).map(([a, b]) => text.slice(a, b));
      if (skip > items.length) {
        throw new Error(`the remote stream changed: ${skip} events after offset ${from} were applied, it now has ${items.length}`);
      }
      items = items.slice(skip);
      const whole = resync || (from === '-1' && items.length > 0 && isSnapshotStart(items[0]));
      if (resync) items.unshift('{"headers":{"control":"reset"}}');
      r = whole ? await this._applyAtomically(items, chunk.offset) : await this._applyInParts(items, from, skip, chunk.offset);
    }
    this._resync = false;
    this._from = chunk.offset;
    this._skip = 0;
    s.offset = chunk.offset;
    if (!r.counted) {
      s.events += r.applied;
      s.skippedEvents += r.skipped;
      s.bytes += text.length;
    }
    s.batches++;
    this._noteRemote(chunk);
    const batch = { applied: r.applied, skipped: r.skipped, offset: chunk.offset, upToDate: chunk.upToDate };
    this.emit('batch', batch);
    if (this.onBatch) await this.onBatch(batch);
  }

  _noteRemote(chunk) {
    const s = this._s;
    s.upToDate = chunk.upToDate;
    if (chunk.upToDate) {
      s.remoteOffset = chunk.offset;
      if (!s.caughtUpAt) {
        s.caughtUpAt = Date.now();
        this.emit('caught-up', this.stats());
      }
    }
  }

  /* items (the events' JSON texts) as JSON arrays of at most maxBatchEvents events and about maxBatchBytes. */
  _parts(items) {
    const parts = [];
    let members = [];
    let bytes = 0;
    for (const item of items) {
      if (members.length && (bytes + item.length > this.maxBatchBytes || members.length >= this.maxBatchEvents)) {
        parts.push({ text: `[${members.join(',')}]`, n: members.length });
        members = [];
        bytes = 0;
      }
      members.push(item);
      bytes += item.length + 1;
    }
    if (members.length) parts.push({ text: `[${members.join(',')}]`, n: members.length });
    return parts;
  }

  /* A large response of history: each part committed alone, at "from#k", the last at sourceOffset. */
  async _applyInParts(items, from, skip, sourceOffset) {
    const total = { applied: 0, skipped: 0, lastOffset: null, counted: true };
    const parts = this._parts(items);
    let done = skip;
    for (let i = 0; i < parts.length; i++) {
      if (this.closed) throw new Error('sink closed');
      done += parts[i].n;
      const off = i === parts.length - 1 ? sourceOffset : partOffset(from, done);
      const r = await this._commit([parts[i]], off);
      total.applied += r.applied;
      total.skipped += r.skipped;
      total.lastOffset = r.lastOffset;
      // counted as they go: a long catch-up shows its progress
      this._s.offset = off;
      this._s.events += r.applied;
      this._s.skippedEvents += r.skipped;
      this._s.bytes += parts[i].text.length;
    }
    return total;
  }

  /* A snapshot or a resync: all its parts in one transaction. */
  _applyAtomically(items, sourceOffset) {
    return this._commit(this._parts(items), sourceOffset);
  }

  /*
   * One transaction: the stream's lock and the check that its source offset
   * is still this._recorded (else StaleOffsetError, nothing applied), then
   * parts (NDJSON or JSON array texts), the last with sourceOffset.
   */
  async _commit(parts, sourceOffset) {
    if (parts.length === 0) return { applied: 0, skipped: 0, lastOffset: null };
    const client = await this.ds.pool.connect();
    let broken;
    try {
      await client.query('BEGIN');
      await client.query('SELECT 1 FROM state.apply_text($1, $2, $3)', ['[]', this.stream, this._recorded ?? '!']);
      const found = await this._recordedRaw(client);
      if (found !== this._recorded) throw new StaleOffsetError(this._recorded, found);
      const total = { applied: 0, skipped: 0, lastOffset: null };
      for (let i = 0; i < parts.length; i++) {
        const last = i === parts.length - 1;
        const r = await this.ds.applyText(parts[i].text,
          { stream: this.stream, sourceOffset: last ? sourceOffset : null }, client);
        if (r.skipped) {
          // only if the remote's offsets went back: nothing of it, and stop
          const e = new Error(`the remote offset ${sourceOffset} is not above the stream's source offset `
            + `${this._recorded}: the remote stream's offsets went back (was it recreated?)`);
          e.fatal = true;
          throw e;
        }
        total.applied += r.applied;
        total.lastOffset = r.lastOffset;
      }
      await client.query('COMMIT');
      this._recorded = sourceOffset;
      return total;
    } catch (err) {
      broken = err;
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release(broken && retryableDbError(broken) ? broken : undefined);
    }
  }

  /* The remote tail, by HEAD (Stream-Next-Offset). */
  async _refreshTail() {
    if (this.closed) return;
    const f = this.fetch ?? globalThis.fetch;
    const headers = {};
    for (const [k, v] of Object.entries(this.headers ?? {})) headers[k] = typeof v === 'function' ? await v() : v;
    const r = await f(this.url, { method: 'HEAD', headers, signal: AbortSignal.timeout(5000) });
    const tail = r.headers.get('stream-next-offset');
    if (r.status === 200 && tail) this._s.remoteOffset = tail;
  }

  /**
   * {offset, remoteOffset, upToDate, behind, behindUnit, eventsBehind,
   *  events, batches, skippedEvents, resyncs, retries, eventsPerSecond,
   *  elapsedMs, catchUpMs}: offset is the last applied (Postgres's source
   *  offset), remoteOffset the remote tail as last seen; behind is the
   *  difference in the offsets' unit, eventsBehind that in events
   *  (estimated from the average size of the events applied when the unit
   *  is bytes); null when unknown.
   */
  stats() {
    const s = this._s;
    const elapsedMs = Date.now() - s.startedAt;
    let behind = null;
    let behindUnit = null;
    let eventsBehind = null;
    const { from: applied, skip } = s.offset === null ? { from: null, skip: 0 } : splitOffset(s.offset);
    const a = offsetPosition(applied === '-1' ? null : applied);
    // "P#k" in events: k more
    if (a && a.unit === 'events') a.pos += skip;
    const b = offsetPosition(s.remoteOffset);
    if (b && (a || applied === '-1') && (!a || a.unit === b.unit)) {
      behind = Math.max(0, b.pos - (a ? a.pos : 0));
      behindUnit = b.unit;
      if (b.unit === 'events') eventsBehind = behind;
      else if (s.events > 0) eventsBehind = Math.round(behind / (s.bytes / s.events));
      else if (behind === 0) eventsBehind = 0;
    } else if (s.remoteOffset && s.offset === s.remoteOffset) {
      behind = 0;
      eventsBehind = 0;
    }
    return {
      offset: s.offset, remoteOffset: s.remoteOffset, upToDate: s.upToDate, behind, behindUnit, eventsBehind,
      events: s.events, batches: s.batches, skippedEvents: s.skippedEvents, resyncs: s.resyncs, retries: s.retries,
      restarts: s.restarts,
      eventsPerSecond: elapsedMs > 0 ? Math.round(s.events * 1000 / elapsedMs) : 0, elapsedMs,
      catchUpMs: s.caughtUpAt ? s.caughtUpAt - s.startedAt : null,
    };
  }

  /** Stops following (the batch in flight completes or rolls back); resolves when stopped. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    this._stopTimer();
    this._abort.abort();
    if (this._session) this._session.cancel();
    await (this.done ?? Promise.resolve()).catch(() => {});
    if (this._ownDs) await this.ds.close();
  }
}

/** Starts a sink (see Sink); await sink.done for its end (live: false, close(), or a fatal error). */
function sink(options) {
  const s = new Sink(options);
  s.start();
  return s;
}

module.exports = { sink, Sink, StaleOffsetError, offsetPosition, splitOffset, arrayMembers };
