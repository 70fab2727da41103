'use strict';
/*
 * A feed for @durable-streams/state's MaterializedState (and anything else
 * that folds protocol change events): snapshot() then changes(), as the
 * protocol events the stream holds, which MaterializedState consumes
 * unchanged.  Control events are not change events: applyEvents() turns a
 * `reset` into clear() and skips the others.
 */

function isControl(event) {
  return Boolean(event && event.headers && event.headers.control);
}

/** Folds protocol events into a MaterializedState-like object (apply/clear). */
function applyEvents(state, events) {
  for (const event of events) {
    if (isControl(event)) {
      if (event.headers.control === 'reset') state.clear();
      continue;
    }
    state.apply(event);
  }
}

class MaterializedFeed {
  /**
   * @param {import('..').DurableState} ds
   * @param {{stream?: string}} [opts]
   */
  constructor(ds, opts = {}) {
    this.ds = ds;
    this.stream = opts.stream ?? ds.stream;
  }

  /** The live entities as insert events, and the offset the snapshot is at. */
  async snapshot() {
    const { events, offset } = await this.ds.snapshot({ stream: this.stream });
    return { events: events.filter((e) => !isControl(e)), offset };
  }

  /** Events after `since` (control events included), at most maxEvents, and the last offset. */
  async changes(since = '-1', opts = {}) {
    return this.ds.changes({ stream: this.stream, since, maxEvents: opts.maxEvents ?? 1000 });
  }

  /** Replaces state's content with the snapshot; returns its offset. */
  async load(state) {
    const { events, offset } = await this.snapshot();
    state.clear();
    state.applyBatch(events);
    return offset;
  }

  /**
   * Loads the snapshot into state, then keeps it up to date (the lossless
   * subscription); a retention resync reloads it.  Returns the Subscription.
   */
  async follow(state, opts = {}) {
    const since = await this.load(state);
    return this.ds.subscribe({
      stream: this.stream,
      since,
      pageSize: opts.pageSize,
      // waiting reads instead of LISTEN (PgBouncer in transaction mode, standbys)
      wait: opts.wait,
      onEvents: (events, offset) => {
        applyEvents(state, events);
        if (opts.onApplied) return opts.onApplied(events, offset);
        return undefined;
      },
      onResync: (events) => {
        state.clear();
        applyEvents(state, events);
      },
    });
  }
}

module.exports = { MaterializedFeed, applyEvents, isControl };
