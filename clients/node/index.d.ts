import { EventEmitter } from 'node:events';
import type { Pool, PoolClient, PoolConfig, Client } from 'pg';

/** A protocol event as the log holds it (headers.offset added by changes()). */
export interface StateEvent {
  type?: string;
  key?: string;
  value?: unknown;
  old_value?: unknown;
  headers: {
    operation?: 'insert' | 'update' | 'delete' | 'upsert';
    control?: 'snapshot-start' | 'snapshot-end' | 'reset';
    txid?: string;
    timestamp?: string;
    offset?: string;
    [header: string]: unknown;
  };
}

export interface StreamOption {
  /** The stream (default: the client's stream, 'default'). */
  stream?: string;
}

/** A TTL: milliseconds, or an SQL interval such as '5 minutes'. */
export type Ttl = number | string;

export interface DurableStateOptions {
  /** An existing pool (not closed by close()). */
  pool?: Pool;
  connectionString?: string;
  /** pg.Pool / pg.Client options (host, port, user, options, ...). */
  pg?: PoolConfig;
  /** The default stream of every call ('default'). */
  stream?: string;
  /** Pool size (10). */
  max?: number;
  /**
   * Run put/get/remove/increment/getVersioned/apply/applyText as named prepared statements (default true).
   * Set false behind a transaction-mode pooler that does not keep prepared statements
   * (PgBouncer before 1.21, or without max_prepared_statements).
   */
  prepare?: boolean;
}

export interface ApplyResult {
  applied: number;
  skipped: number;
  lastOffset: string;
}

export interface Page {
  events: StateEvent[];
  /** Each event's offset (changes() only). */
  offsets?: string[];
  /** The offset of the last event (or since, if none). */
  offset: string;
}

export interface SubscribeOptions extends StreamOption {
  /** Deliver events after this offset ('-1': from the start). */
  since?: string;
  pageSize?: number;
  reconnectDelayMs?: number;
  /** Every event after `since`, in order, exactly once; awaited before the next page. */
  onEvents?: (events: StateEvent[], offset: string) => unknown | Promise<unknown>;
  /**
   * Follow with waiting reads (state.changes(..., wait_ms)) through the pool
   * instead of LISTEN on a connection of its own: works through a
   * transaction-pooling PgBouncer and against a hot standby.  true waits up
   * to 10 s per read; a number sets that wait in ms.  Messages
   * (state.publish) are not delivered in this mode.
   */
  wait?: boolean | number;
  /** Transient messages of state.publish(). */
  onMessage?: (message: { topic: string; message: unknown }) => unknown;
  /** The log no longer has the offset (retention): the stream's snapshot, then events after it. */
  onResync?: (snapshot: StateEvent[], offset: string) => unknown | Promise<unknown>;
}

export declare class Subscription extends EventEmitter {
  readonly stream: string;
  /** The offset of the last event delivered. */
  lastOffset: string;
  reconnects: number;
  notifications: number;
  readonly closed: boolean;
  /** The backend pid of its connection, while connected. */
  readonly pid: number | null;
  close(): Promise<void>;
  on(event: 'ready', listener: (offset: string) => void): this;
  on(event: 'events', listener: (events: StateEvent[], offset: string) => void): this;
  on(event: 'notification', listener: (payload: unknown, channel: string) => void): this;
  on(event: 'message', listener: (message: { topic: string; message: unknown }) => void): this;
  on(event: 'resync', listener: (snapshot: StateEvent[], offset: string) => void): this;
  on(event: 'reconnect' | 'error', listener: (err: Error) => void): this;
  on(event: 'close', listener: () => void): this;
}

export declare class DurableState {
  constructor(options?: DurableStateOptions);
  readonly pool: Pool;
  readonly stream: string;
  query(sql: string, params?: unknown[]): Promise<import('pg').QueryResult>;
  /** Sent as JSON text to state.apply_text (a single event as a one-element array). */
  apply(events: StateEvent | StateEvent[], opts?: StreamOption & { sourceOffset?: string }): Promise<ApplyResult>;
  /** JSON text as it is (a JSON array of events, or NDJSON) through state.apply_text. */
  applyText(text: string, opts?: StreamOption & { sourceOffset?: string }, client?: Pool | PoolClient | Client): Promise<ApplyResult>;
  /**
   * Streams NDJSON (a Readable) or events (an iterable / async iterable) through
   * `COPY state.ingest FROM STDIN`: applied in batches of batchEvents, atomically, in
   * constant server memory; {applied} is the number of events applied.
   */
  ingest(source: NodeJS.ReadableStream | Iterable<unknown> | AsyncIterable<unknown>,
         opts?: StreamOption & { sourceOffset?: string; batchEvents?: number }): Promise<{ applied: number }>;
  /** undefined if absent (a stored JSON null is null). */
  get<T = unknown>(type: string, key: string, opts?: StreamOption): Promise<T | undefined>;
  getMany<T = unknown>(type: string, keys: string[], opts?: StreamOption): Promise<Record<string, T>>;
  getType<T = unknown>(type: string, opts?: StreamOption): Promise<Map<string, T>>;
  getVersioned<T = unknown>(type: string, key: string, opts?: StreamOption): Promise<{ value: T; version: number } | undefined>;
  /** Returns the event's offset; expectedVersion makes it a compare-and-set (code 40001 on a mismatch, 0 = absent). */
  put(type: string, key: string, value: unknown, opts?: StreamOption & { ttl?: Ttl; expectedVersion?: number }): Promise<string>;
  remove(type: string, key: string, opts?: StreamOption): Promise<boolean>;
  increment(type: string, key: string, member: string, by?: number, opts?: StreamOption): Promise<number>;
  publish(topic: string, message: unknown, opts?: StreamOption): Promise<void>;
  awaitTxId(txid: string, opts?: { timeoutMs?: number; durability?: 'committed' | 'flushed' | 'replicated' }): Promise<boolean>;
  txidStatus(txid: string): Promise<'unknown' | 'committed' | 'flushed' | 'replicated'>;
  tail(opts?: StreamOption): Promise<string>;
  channel(opts?: StreamOption): Promise<string>;
  changes(opts?: StreamOption & { since?: string; maxEvents?: number; waitMs?: number }, client?: Pool | PoolClient | Client): Promise<Page>;
  snapshot(opts?: StreamOption, client?: Pool | PoolClient | Client): Promise<Page>;
  /** The snapshot through a cursor, batchSize (1000) events at a time; resolves to its snapshot-end offset. */
  snapshotBatches(opts: (StreamOption & { batchSize?: number }) | undefined,
    onEvents: (events: StateEvent[]) => unknown | Promise<unknown>,
    client?: Pool | PoolClient | Client): Promise<{ offset: string }>;
  subscribe(opts?: SubscribeOptions): Subscription;
  close(): Promise<void>;
}

export declare function ttlInterval(ttl: Ttl | null | undefined): string | null;
/** The statement apply() and applyText() send. */
export declare const APPLY_TEXT_SQL: string;
