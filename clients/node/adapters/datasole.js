'use strict';
/*
 * datasole-shaped state: a StateBackend (get/set/delete/subscribe/publish)
 * and a per-user SessionStore with versions and an onChange stream, both
 * on one durable_state collection each.  Writes are logged events; every
 * process's subscribers see every change (the lossless subscription), and
 * publish() is a transient message on the same channel.
 */

/* One lossless subscription per stream, fanned out to handlers. */
class Fanout {
  constructor(ds, stream, wait) {
    this.ds = ds;
    this.stream = stream;
    this.wait = wait;
    this.handlers = new Set();
    this.sub = null;
    this.ready = null;
  }

  async _start() {
    const since = await this.ds.tail({ stream: this.stream });
    this.sub = this.ds.subscribe({
      stream: this.stream,
      since,
      wait: this.wait,
      onEvents: (events) => {
        for (const e of events) for (const h of this.handlers) if (h.onEvent) h.onEvent(e);
      },
      onMessage: (m) => {
        for (const h of this.handlers) if (h.onMessage) h.onMessage(m);
      },
    });
    this.sub.on('error', () => {});
    await new Promise((resolve) => this.sub.once('ready', resolve));
  }

  add(handler) {
    this.handlers.add(handler);
    if (!this.ready) this.ready = this._start();
    return () => {
      this.handlers.delete(handler);
    };
  }

  async close() {
    if (this.sub) await this.sub.close();
  }
}

class DurableStateBackend {
  /**
   * @param {import('..').DurableState} ds
   * @param {{type?: string, stream?: string, wait?: boolean | number}} [opts] the
   *   collection's type ('kv'); wait: follow with waiting reads (works through
   *   PgBouncer in transaction mode and on a standby; no publish messages)
   */
  constructor(ds, opts = {}) {
    this.ds = ds;
    this.type = opts.type ?? 'kv';
    this.stream = opts.stream ?? ds.stream;
    this.fanout = new Fanout(ds, this.stream, opts.wait);
  }

  /** Resolves once subscriptions made so far are listening. */
  async connect() {
    if (this.fanout.ready) await this.fanout.ready;
  }

  async get(key) {
    return this.ds.get(this.type, key, { stream: this.stream });
  }

  /** opts.ttl: milliseconds or an interval. */
  async set(key, value, opts = {}) {
    await this.ds.put(this.type, key, value, { stream: this.stream, ttl: opts.ttl });
  }

  async delete(key) {
    return this.ds.remove(this.type, key, { stream: this.stream });
  }

  /**
   * handler(key, value) on every change of key (value undefined when
   * deleted) and every publish(key, ...); '*' for every key.  Returns the
   * unsubscribe function.
   */
  subscribe(key, handler) {
    return this.fanout.add({
      onEvent: (e) => {
        if (e.type !== this.type || (key !== '*' && e.key !== key)) return;
        handler(e.key, e.headers.operation === 'delete' ? undefined : e.value);
      },
      onMessage: (m) => {
        if (key === '*' || m.topic === key) handler(m.topic, m.message);
      },
    });
  }

  async publish(key, value) {
    await this.ds.publish(key, value, { stream: this.stream });
  }

  async close() {
    await this.fanout.close();
  }
}

/*
 * Per-user keys with versions.  An entity's value is {value, version}:
 * every set is a compare-and-set on the collection's version (so two
 * processes never both think they wrote version n), and the log event
 * carries the version, so onChange reports exactly the version written.
 */
class SessionStore {
  constructor(ds, opts = {}) {
    this.ds = ds;
    this.type = opts.type ?? 'session';
    this.stream = opts.stream ?? ds.stream;
    this.fanout = new Fanout(ds, this.stream, opts.wait);
  }

  static entityKey(userId, key) {
    return `${encodeURIComponent(userId)}/${encodeURIComponent(key)}`;
  }

  static parseKey(entityKey) {
    const i = entityKey.indexOf('/');
    return [decodeURIComponent(entityKey.slice(0, i)), decodeURIComponent(entityKey.slice(i + 1))];
  }

  /** {value, version} or undefined. */
  async getVersioned(userId, key) {
    const v = await this.ds.getVersioned(this.type, SessionStore.entityKey(userId, key), { stream: this.stream });
    return v ? { value: v.value.value, version: v.version } : undefined;
  }

  async get(userId, key) {
    const v = await this.getVersioned(userId, key);
    return v ? v.value : undefined;
  }

  /**
   * Writes a value; returns its version.  opts.expectedVersion makes it a
   * compare-and-set (error code 40001 on a mismatch); without it, a
   * concurrent writer makes it retry.  opts.ttl as for put.
   */
  async set(userId, key, value, opts = {}) {
    const ek = SessionStore.entityKey(userId, key);
    for (let attempt = 0; ; attempt++) {
      const cur = opts.expectedVersion ?? ((await this.ds.getVersioned(this.type, ek, { stream: this.stream }))?.version ?? 0);
      try {
        await this.ds.put(this.type, ek, { value, version: cur + 1 },
          { stream: this.stream, ttl: opts.ttl, expectedVersion: cur });
        return cur + 1;
      } catch (err) {
        if (err.code !== '40001' || opts.expectedVersion !== undefined || attempt >= 20) throw err;
      }
    }
  }

  async delete(userId, key) {
    return this.ds.remove(this.type, SessionStore.entityKey(userId, key), { stream: this.stream });
  }

  /** handler(userId, key, value, version) for every change, in commit order (value undefined when deleted). */
  onChange(handler) {
    return this.fanout.add({
      onEvent: (e) => {
        if (e.type !== this.type) return;
        const [userId, key] = SessionStore.parseKey(e.key);
        if (e.headers.operation === 'delete') handler(userId, key, undefined, 0);
        else handler(userId, key, e.value.value, e.value.version);
      },
    });
  }

  async ready() {
    if (this.fanout.ready) await this.fanout.ready;
  }

  async close() {
    await this.fanout.close();
  }
}

module.exports = { DurableStateBackend, SessionStore };
