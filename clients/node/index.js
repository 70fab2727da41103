'use strict';
/*
 * durable-state: the Node client of the durable_state PostgreSQL extension.
 *
 * Every method is one SQL call through a pg.Pool (state.apply_text, state.get,
 * state.put, ...); subscribe() keeps one dedicated connection that LISTENs
 * on the stream's channel and reads state.changes() after every wake-up and
 * every reconnect (the lossless protocol of the README).  Reads of a whole
 * type or stream (getType, snapshot, a subscriber's resync) go through a
 * cursor, CURSOR_ROWS rows at a time, never as one result.
 */
const { EventEmitter } = require('node:events');
const pg = require('pg');
const Cursor = require('pg-cursor');
const { from: copyFrom } = require('pg-copy-streams');
const { pipeline } = require('node:stream/promises');
const { Readable } = require('node:stream');

const DEFAULT_STREAM = 'default';

/* Rows a cursor reads at a time. */
const CURSOR_ROWS = 1000;

/*
 * Runs sql (with params) through a cursor on `on` -- a pg.Pool (one of its
 * clients, held until the cursor is closed) or a connected client -- and
 * hands every batch of at most batchRows rows to onRows (awaited), so no
 * more than one batch is in memory here, however large the result.  A
 * cursor's portal is open in an implicit transaction until it is closed.
 */
async function readCursor(on, sql, params, onRows, batchRows = CURSOR_ROWS) {
  const isPool = typeof on.totalCount === 'number' && typeof on.connect === 'function';
  const client = isPool ? await on.connect() : on;
  let broken;
  try {
    const cursor = client.query(new Cursor(sql, params));
    try {
      for (;;) {
        const rows = await cursor.read(batchRows);
        if (rows.length === 0) break;
        await onRows(rows);
      }
    } finally {
      // a cursor that cannot close leaves its connection unusable
      await cursor.close().catch((err) => { broken = err; });
    }
  } finally {
    if (isPool) client.release(broken);
  }
}

/* A TTL as an SQL interval: milliseconds (number) or interval text. */
function ttlInterval(ttl) {
  if (ttl === undefined || ttl === null) return null;
  if (typeof ttl === 'number') {
    if (!Number.isFinite(ttl) || ttl <= 0) throw new RangeError(`ttl must be a positive number of milliseconds, not ${ttl}`);
    return `${ttl} milliseconds`;
  }
  return String(ttl);
}

/* What the Node client sends for apply() and applyText(). */
const APPLY_TEXT_SQL = 'SELECT applied, skipped, last_offset FROM state.apply_text($1, $2, $3)';

/* {applied, skipped, lastOffset} of a row of state.apply / state.apply_text. */
function applyResult(row) {
  return { applied: Number(row.applied), skipped: Number(row.skipped), lastOffset: row.last_offset };
}

/* The offset of the event after `offset` is greater: offsets are fixed-width decimal strings. */
function offsetAfter(a, b) {
  return a > b;
}

/* Above every offset (offsets are 20-digit decimal strings). */
const MAX_OFFSET = '99999999999999999999';

/* The events of an iterable (or async iterable) as NDJSON lines. */
async function* ndjsonLines(events) {
  for await (const ev of events) {
    if (typeof ev === 'string') yield ev.endsWith('\n') ? ev : `${ev}\n`;
    else yield `${JSON.stringify(ev)}\n`;
  }
}

class DurableState {
  /**
   * @param {object} [options]
   * @param {pg.Pool} [options.pool]         an existing pool (not closed by close())
   * @param {string} [options.connectionString]
   * @param {object} [options.pg]            pg.Pool / pg.Client options (host, port, user, ...)
   * @param {string} [options.stream]        default stream of every call ('default')
   * @param {number} [options.max]           pool size (10)
   * @param {boolean} [options.prepare]      run the client's fixed queries (put, get, remove,
   *   increment, getVersioned, apply, applyText) as named prepared statements, parsed and planned once per
   *   connection (default true; a put then costs the server about 40% less).  Set false behind a
   *   transaction-mode pooler that does not keep prepared statements (PgBouncer before 1.21, or
   *   without max_prepared_statements).
   */
  constructor(options = {}) {
    this.stream = options.stream ?? DEFAULT_STREAM;
    this._clientConfig = { ...(options.pg ?? {}) };
    if (options.connectionString) this._clientConfig.connectionString = options.connectionString;
    this._ownPool = !options.pool;
    this.pool = options.pool ?? new pg.Pool({ max: options.max ?? 10, ...this._clientConfig });
    this._subscriptions = new Set();
    this._prepare = options.prepare ?? true;
  }

  /* One of the client's fixed queries: named (prepared once per connection) unless prepare is off. */
  _q(name, text, values) {
    return this.pool.query(this._prepare ? { name, text, values } : { text, values });
  }

  _stream(opts) {
    return (opts && opts.stream) ?? this.stream;
  }

  async query(sql, params) {
    return this.pool.query(sql, params);
  }

  /**
   * Applies one event or an array of events atomically: {applied, skipped, lastOffset}.
   * The events go as JSON text to state.apply_text (the server's text path:
   * no jsonb_in of the parameter first); a single event is sent as a
   * one-element array, so that results and errors are those of
   * state.apply.  Anything else (a scalar, null) goes to state.apply,
   * which refuses it with its own error.
   */
  async apply(events, opts = {}) {
    if (events === null || typeof events !== 'object') {
      const r = await this.pool.query(
        'SELECT applied, skipped, last_offset FROM state.apply($1::jsonb, $2, $3)',
        [JSON.stringify(events), this._stream(opts), opts.sourceOffset ?? null]);
      return applyResult(r.rows[0]);
    }
    const text = JSON.stringify(Array.isArray(events) ? events : [events]);
    return this.applyText(text, opts);
  }

  /**
   * Applies JSON text as it is: a JSON array of events or NDJSON (one event
   * per line), atomically, through state.apply_text; for text that is
   * already JSON (a file, an HTTP body), with no parse here.
   */
  async applyText(text, opts = {}, client = this.pool) {
    const values = [text, this._stream(opts), opts.sourceOffset ?? null];
    // prepared once per connection, as the key/value calls (unless prepare is off)
    const r = await client.query(this._prepare ? { name: 'ds_apply_text', text: APPLY_TEXT_SQL, values }
      : { text: APPLY_TEXT_SQL, values });
    return applyResult(r.rows[0]);
  }

  /**
   * Streams events of any number into the stream through
   * `COPY state.ingest FROM STDIN` (src/ingest.c): the server applies them
   * in batches of opts.batchEvents (its default: 10,000) in constant
   * memory, atomically (one statement: an error rolls back every batch),
   * with opts.sourceOffset for the whole input.  source: a Readable of
   * NDJSON text (a file, an HTTP body: its bytes go through unparsed), or
   * an iterable / async iterable of events (objects, each sent as one
   * line).  Resolves to {applied}: the events applied (0 if the input was
   * at or before the stream's recorded source offset).
   */
  async ingest(source, opts = {}) {
    const client = await this.pool.connect();
    let broken;
    try {
      const with_ = [`stream ${client.escapeLiteral(this._stream(opts))}`];
      if (opts.sourceOffset != null) with_.push(`source_offset ${client.escapeLiteral(String(opts.sourceOffset))}`);
      if (opts.batchEvents != null) {
        if (!Number.isInteger(opts.batchEvents) || opts.batchEvents < 1) {
          throw new RangeError(`batchEvents must be a positive integer, not ${opts.batchEvents}`);
        }
        with_.push(`batch_events ${opts.batchEvents}`);
      }
      const copy = client.query(copyFrom(`COPY state.ingest FROM STDIN WITH (${with_.join(', ')})`));
      const input = source instanceof Readable ? source : Readable.from(ndjsonLines(source));
      await pipeline(input, copy);
      return { applied: Number(copy.rowCount) };
    } catch (err) {
      broken = err;
      throw err;
    } finally {
      // a COPY cut short leaves the connection in an unknown state
      client.release(broken);
    }
  }

  /** The value of an entity, or undefined if absent (a stored JSON null is null). */
  async get(type, key, opts = {}) {
    const r = await this._q('ds_get',
      'SELECT v, v IS NULL AS absent FROM state.get($1, $2, $3) v', [type, key, this._stream(opts)]);
    return r.rows[0].absent ? undefined : r.rows[0].v;
  }

  /** {key: value} of those of keys present. */
  async getMany(type, keys, opts = {}) {
    const r = await this.pool.query('SELECT state.get_many($1, $2::text[], $3) AS m',
      [type, keys, this._stream(opts)]);
    return r.rows[0].m ?? {};
  }

  /** Every entity of a type, as a Map key -> value (read through a cursor). */
  async getType(type, opts = {}) {
    const entities = new Map();
    await readCursor(this.pool, 'SELECT key, value FROM state.get_type($1, $2)',
      [type, this._stream(opts)], (rows) => {
        for (const row of rows) entities.set(row.key, row.value);
      });
    return entities;
  }

  /** {value, version} of an entity, or undefined if absent. */
  async getVersioned(type, key, opts = {}) {
    const r = await this._q('ds_get_versioned', 'SELECT value, version FROM state.get_versioned($1, $2, $3)',
      [type, key, this._stream(opts)]);
    if (r.rows.length === 0) return undefined;
    return { value: r.rows[0].value, version: Number(r.rows[0].version) };
  }

  /**
   * Upserts an entity as a logged event; returns its offset.
   * opts.ttl: milliseconds or an interval ('5 minutes'); opts.expectedVersion:
   * compare-and-set (0: must be absent), a mismatch rejects with code 40001.
   */
  async put(type, key, value, opts = {}) {
    if (value === undefined) throw new TypeError('value must not be undefined (use remove())');
    const r = await this._q('ds_put',
      'SELECT state.put($1, $2, $3::jsonb, $4::interval, $5, $6) AS off',
      [type, key, JSON.stringify(value), ttlInterval(opts.ttl), this._stream(opts),
        opts.expectedVersion ?? null]);
    return r.rows[0].off;
  }

  /** Deletes an entity as a logged event; false if it was absent. */
  async remove(type, key, opts = {}) {
    const r = await this._q('ds_remove', 'SELECT state.remove($1, $2, $3) AS removed',
      [type, key, this._stream(opts)]);
    return r.rows[0].removed;
  }

  /** Adds `by` to a numeric member atomically; returns the new number. */
  async increment(type, key, member, by = 1, opts = {}) {
    const r = await this._q('ds_increment', 'SELECT state.increment($1, $2, $3, $4::numeric, $5) AS n',
      [type, key, member, String(by), this._stream(opts)]);
    return Number(r.rows[0].n);
  }

  /** A transient message to the stream's subscribers, sent when the call commits. */
  async publish(topic, message, opts = {}) {
    await this.pool.query('SELECT state.publish($1, $2::jsonb, $3)',
      [topic, JSON.stringify(message ?? null), this._stream(opts)]);
  }

  /** Waits until txid is committed / flushed / replicated; false on timeout. */
  async awaitTxId(txid, opts = {}) {
    const r = await this.pool.query('SELECT state.await_txid($1, $2, $3) AS ok',
      [txid, opts.timeoutMs ?? 5000, opts.durability ?? 'committed']);
    return r.rows[0].ok;
  }

  async txidStatus(txid) {
    const r = await this.pool.query('SELECT state.txid_status($1) AS s', [txid]);
    return r.rows[0].s;
  }

  async tail(opts = {}) {
    const r = await this.pool.query('SELECT state.tail($1) AS t', [this._stream(opts)]);
    return r.rows[0].t;
  }

  async channel(opts = {}) {
    const r = await this.pool.query('SELECT state.channel($1) AS c', [this._stream(opts)]);
    return r.rows[0].c;
  }

  /**
   * One page of the log after `since` ('-1': from the start): protocol events
   * with headers.offset, and the offset of the last one (or since).
   */
  async changes(opts = {}, client = this.pool) {
    const since = opts.since ?? '-1';
    // waitMs: a waiting read (the server sleeps until something is readable)
    const r = opts.waitMs
      ? await client.query('SELECT "offset", event FROM state.changes($1, $2, $3, $4)',
        [this._stream(opts), since, opts.maxEvents ?? 1000, opts.waitMs])
      : await client.query('SELECT "offset", event FROM state.changes($1, $2, $3)',
        [this._stream(opts), since, opts.maxEvents ?? 1000]);
    const events = r.rows.map((row) => row.event);
    const offsets = r.rows.map((row) => row.offset);
    return { events, offsets, offset: r.rows.length ? offsets[offsets.length - 1] : since };
  }

  /**
   * The stream's state as protocol events: snapshot-start, one insert per
   * live entity, snapshot-end; offset is the tail the snapshot is at.
   */
  async snapshot(opts = {}, client = this.pool) {
    const events = [];
    const { offset } = await this.snapshotBatches(opts, (batch) => { events.push(...batch); }, client);
    return { events, offset };
  }

  /**
   * The stream's snapshot read through a cursor: onEvents(events) gets its
   * events in order, opts.batchSize (1000) at a time (awaited), so a
   * snapshot of any size streams; resolves to {offset}, the snapshot-end
   * offset ('-1' if there was none).
   */
  async snapshotBatches(opts, onEvents, client = this.pool) {
    let offset = '-1';
    await readCursor(client, 'SELECT s FROM state.snapshot($1) s', [this._stream(opts)],
      async (rows) => {
        const events = rows.map((row) => row.s);
        const end = events.find((e) => e.headers && e.headers.control === 'snapshot-end');
        if (end) offset = end.headers.offset;
        await onEvents(events);
      }, (opts && opts.batchSize) || CURSOR_ROWS);
    return { offset };
  }

  /**
   * Subscribes to the stream: onEvents(events) gets every event after
   * `since`, in order, exactly once, across notifications and reconnects.
   * See Subscription.
   */
  subscribe(opts = {}) {
    const sub = new Subscription(this, { ...opts, stream: this._stream(opts) });
    this._subscriptions.add(sub);
    sub.once('close', () => this._subscriptions.delete(sub));
    sub.start();
    return sub;
  }

  _newClient() {
    return new pg.Client({ ...this._clientConfig });
  }

  async close() {
    await Promise.all([...this._subscriptions].map((s) => s.close()));
    if (this._ownPool) await this.pool.end();
  }
}

/*
 * The lossless subscriber: LISTEN first, then read changes(since => last)
 * until empty; again on every notification; on a lost connection, reconnect
 * and do the same from the last offset delivered.  If the log no longer
 * has that offset (retention), the subscriber resyncs from a snapshot:
 * onResync(snapshotEvents) then events after the snapshot's offset.
 *
 * Events: 'ready' (first catch-up done), 'events' (events, offset),
 * 'notification' (parsed payload, channel), 'message' ({topic, message}),
 * 'resync' (snapshot events, offset), 'reconnect' (error), 'error', 'close'.
 */
class Subscription extends EventEmitter {
  constructor(ds, opts) {
    super();
    this.ds = ds;
    this.stream = opts.stream;
    this.lastOffset = opts.since ?? '-1';
    this.pageSize = opts.pageSize ?? 1000;
    this.reconnectDelayMs = opts.reconnectDelayMs ?? 100;
    this.onEvents = opts.onEvents;
    this.onMessage = opts.onMessage;
    this.onResync = opts.onResync;
    // wait: follow with waiting reads instead of LISTEN (true, or the
    // longest wait of one read in ms; true is 10000)
    this.wait = !!opts.wait;
    this.waitMs = typeof opts.wait === 'number' ? opts.wait : 10000;
    this.client = null;
    this.closed = false;
    this.reconnects = 0;
    this.notifications = 0;
    this._reading = null;
    this._again = false;
    // messages not yet delivered, in arrival order: {after, reads, deliver}
    this._held = [];
    this._reads = 0; // log reads issued so far (LISTEN mode)
    // LISTEN mode delivers events up to the highest offset it was told of
    // (the tail when it connected, the `to` of each notification), so that
    // a message published before an event's commit, whose notification
    // comes before the event's, is delivered before that event even when a
    // read returns the event first (Postgres makes a commit visible a
    // moment before it signals listeners).  null: no limit.
    this._deliverTo = null;
    this._readyOnce = false;
    this._connecting = null;
  }

  start() {
    if (this.wait) {
      this._connecting = this._follow();
      return;
    }
    this._connecting = this._connect().catch((err) => this._lost(err));
  }

  /*
   * wait mode: waiting reads through the pool, one statement each (no
   * LISTEN, no session state), so it works through a transaction-pooling
   * PgBouncer and against a hot standby.  Messages (state.publish) need
   * LISTEN and are not delivered in this mode.
   */
  async _follow() {
    while (!this.closed) {
      try {
        const page = await this._readPage(this.ds.pool, this.waitMs);
        if (!this._readyOnce && page.events.length < this.pageSize) {
          this._readyOnce = true;
          this.emit('ready', this.lastOffset);
        }
      } catch (err) {
        if (this.closed) return;
        this.reconnects++;
        this.emit('reconnect', err);
        await new Promise((r) => setTimeout(r, this.reconnectDelayMs));
      }
    }
  }

  /* One page after lastOffset (waiting up to waitMs for one), delivered. */
  async _readPage(client, waitMs = 0) {
    let page;
    try {
      page = await this.ds.changes({ stream: this.stream, since: this.lastOffset, maxEvents: this.pageSize,
        waitMs: this._readyOnce ? waitMs : 0 }, client);
    } catch (err) {
      if (err.code === '55000' && /retain/i.test(err.message)) {
        await this._resync(client);
        return { events: [], offset: this.lastOffset };
      }
      throw err;
    }
    if (this.closed || page.events.length === 0) return page;
    await this._emitEvents(page.events, page.offset);
    return page;
  }

  async _connect() {
    if (this.closed) return;
    const client = this.ds._newClient();
    this.client = client;
    client.on('error', (err) => this._lost(err, client));
    client.on('end', () => this._lost(new Error('connection ended'), client));
    client.on('notification', (n) => this._notified(n));
    await client.connect();
    const r = await client.query('SELECT state.channel($1) AS c', [this.stream]);
    await client.query(`LISTEN ${client.escapeIdentifier(r.rows[0].c)}`);
    // what was committed before LISTEN has no notification to wait for
    const t = await client.query('SELECT state.tail($1) AS t', [this.stream]);
    this._notifiedUpTo(t.rows[0].t);
    await this._catchUp();
    if (!this._readyOnce) {
      this._readyOnce = true;
      this.emit('ready', this.lastOffset);
    }
  }

  _notified(n) {
    this.notifications++;
    let payload;
    try {
      payload = JSON.parse(n.payload);
    } catch {
      payload = null;
    }
    this.emit('notification', payload, n.channel);
    if (payload && payload.topic !== undefined && payload.from === undefined) {
      const msg = { topic: payload.topic, message: payload.message };
      const deliver = () => {
        this.emit('message', msg);
        // called now, not in a later microtask, so that it runs before the
        // onEvents of the events after the message
        if (this.onMessage) {
          try {
            const r = this.onMessage(msg);
            if (r && typeof r.catch === 'function') r.catch((e) => this.emit('error', e));
          } catch (e) {
            process.nextTick(() => this.emit('error', e));
          }
        }
      };
      // A message goes between the events it follows and the ones after
      // it: its payload's `after` is the stream's offset when it was
      // published (every event up to it had ended, or was the publishing
      // transaction's own).  It waits until the events up to `after` are
      // delivered, which is known once lastOffset reaches it, an event past
      // it is read, or a read issued after the message arrived comes back
      // short (the reader was caught up, `after` fell in a gap).  A payload
      // without `after` (an older server) waits for the page being read.
      this._held.push({ after: payload.after ?? null, reads: this._reads, deliver });
      this._releaseHeld();
      if (this._held.length === 0) return;
      if (payload.after === undefined && !this._reading) this._releaseHeld(true);
      else this._catchUp().catch((err) => this._lost(err));
      return;
    }
    // a notification of events: they may be delivered now; one that is not
    // ours (no `to`) lifts the limit rather than hold events back for good
    this._notifiedUpTo(payload && typeof payload.to === 'string' ? payload.to : null);
    this._catchUp().catch((err) => this._lost(err));
  }

  /* Events up to offset (null: all) may be delivered. */
  _notifiedUpTo(offset) {
    if (offset === null) this._deliverTo = MAX_OFFSET;
    else if (this._deliverTo === null || offsetAfter(offset, this._deliverTo)) this._deliverTo = offset;
  }

  /* Reads the log until empty; one reader at a time, re-run if woken meanwhile. */
  _catchUp() {
    if (this._reading) {
      this._again = true;
      return this._reading;
    }
    this._reading = (async () => {
      try {
        do {
          this._again = false;
          await this._readAll();
        } while (this._again && !this.closed);
      } finally {
        this._reading = null;
        this._releaseHeld(true);
      }
    })();
    return this._reading;
  }

  /*
   * Delivers the held messages that may go now, in order: those whose
   * events are delivered (after <= lastOffset, or below `before`, the
   * offset of the next event to deliver), all of them after a short page
   * read issued after they arrived (caughtUpRead: that read's number), and
   * those without `after` at the end of a page (pageDone).
   */
  _releaseHeld(pageDone = false, before = null, caughtUpRead = -1) {
    while (this._held.length > 0) {
      const m = this._held[0];
      const ok = m.after === null ? pageDone
        : !offsetAfter(m.after, this.lastOffset) || (before !== null && offsetAfter(before, m.after))
        || m.reads < caughtUpRead;
      if (!ok) return;
      this._held.shift();
      m.deliver();
    }
  }

  /*
   * Delivers a page read by read number `read`: its events, split where a
   * held message goes between them, then the messages it lets go.
   */
  async _deliverPage(page, read) {
    const { offsets } = page;
    let { events } = page;
    // events past what notifications announced wait for theirs (LISTEN mode)
    const limit = this._deliverTo;
    let heldBack = false;
    if (limit !== null && events.length > 0 && offsetAfter(offsets[offsets.length - 1], limit)) {
      const n = offsets.findIndex((o) => offsetAfter(o, limit));
      events = events.slice(0, n);
      heldBack = true;
    }
    let start = 0;
    for (let i = 0; i < events.length && this._held.length > 0; i++) {
      const m = this._held[0];
      if (m.after === null || !offsetAfter(offsets[i], m.after)) continue;
      if (i > start) await this._emitEvents(events.slice(start, i), offsets[i - 1]);
      start = i;
      this._releaseHeld(false, offsets[i]);
    }
    if (start < events.length) await this._emitEvents(start === 0 ? events : events.slice(start), offsets[events.length - 1]);
    this._releaseHeld(true, heldBack ? offsets[events.length] : null,
      events.length < this.pageSize && !heldBack ? read : -1);
    return heldBack;
  }

  async _emitEvents(events, offset) {
    if (this.onEvents) await this.onEvents(events, offset);
    this.emit('events', events, offset);
    this.lastOffset = offset;
  }

  async _readAll() {
    const client = this.client;
    for (;;) {
      if (this.closed || client !== this.client) return;
      let page;
      const read = ++this._reads;
      try {
        page = await this.ds.changes({ stream: this.stream, since: this.lastOffset, maxEvents: this.pageSize }, client);
      } catch (err) {
        if (err.code === '55000' && /retain/i.test(err.message)) {
          await this._resync(client);
          continue;
        }
        throw err;
      }
      // held back: the rest comes with a notification, which reads again
      if (await this._deliverPage(page, read)) return;
      if (page.events.length < this.pageSize) return;
    }
  }

  async _resync(client) {
    const snap = await this.ds.snapshot({ stream: this.stream }, client);
    if (this.onResync) await this.onResync(snap.events, snap.offset);
    this.emit('resync', snap.events, snap.offset);
    this.lastOffset = snap.offset;
    if (this._deliverTo !== null) this._notifiedUpTo(snap.offset);
  }

  _lost(err, client = this.client) {
    // client is null when the connection was already given up (a read that
    // fails after the 'error' event): one loss, one reconnect
    if (this.closed || !client || client !== this.client) return;
    this.client = null;
    this.reconnects++;
    this.emit('reconnect', err);
    if (client) client.removeAllListeners('notification');
    if (client) client.end().catch(() => {});
    setTimeout(() => {
      if (!this.closed) this._connecting = this._connect().catch((e) => this._lost(e));
    }, this.reconnectDelayMs);
  }

  /** The backend pid of the subscriber's connection (for tests and monitoring). */
  get pid() {
    return this.client && this.client.processID;
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners();
      client.on('error', () => {});
      await client.end().catch(() => {});
    }
    this.emit('close');
  }
}

module.exports = { DurableState, Subscription, ttlInterval, offsetAfter, APPLY_TEXT_SQL };
