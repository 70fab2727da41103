import { EventEmitter } from 'node:events';
import type { Pool, PoolConfig } from 'pg';
import type { DurableState } from './index';

export interface SinkOptions {
  /** The remote Durable Stream: JSON mode, State Protocol events. */
  url: string | URL;
  /** A client to apply with; else one on pool / connectionString / pg (closed by close()). */
  ds?: DurableState;
  pool?: Pool;
  connectionString?: string;
  pg?: PoolConfig;
  /** The durable_state stream to apply to ('default'); its collections must exist. */
  stream?: string;
  /** true (default): catch up, then follow; 'sse' / 'long-poll': follow that way; false: catch up and stop. */
  live?: boolean | 'sse' | 'long-poll';
  /** HTTP headers and query parameters of every request (values may be functions, per request). */
  headers?: Record<string, string | (() => string | Promise<string>)>;
  params?: Record<string, string | (() => string | Promise<string>) | undefined>;
  fetch?: typeof globalThis.fetch;
  /** A response up to this size goes as it came, in one batch; a larger one in parts (1 MB). */
  maxBatchBytes?: number;
  /** Events per part of a large response (10,000). */
  maxBatchEvents?: number;
  /** How often onLag runs, after asking the remote for its tail (1000 ms). */
  lagIntervalMs?: number;
  onLag?: (stats: SinkStats) => void;
  onBatch?: (batch: SinkBatch) => unknown | Promise<unknown>;
  /** First delay before retrying after a lost connection (500 ms, doubling up to maxRetryDelayMs, 10 s). */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
}

export interface SinkBatch {
  applied: number;
  skipped: number;
  /** The remote offset after the response, now the stream's source offset. */
  offset: string;
  upToDate: boolean;
}

export interface SinkStats {
  /** The source offset applied ("P#k" while inside a large response from P). */
  offset: string | null;
  /** The remote tail as last seen (HEAD, or an up-to-date response). */
  remoteOffset: string | null;
  upToDate: boolean;
  /** remoteOffset - offset in the offsets' unit: 'bytes' ("<seq>_<bytes>") or 'events' (20 digits); null if unknown. */
  behind: number | null;
  behindUnit: 'bytes' | 'events' | null;
  /** Events behind (estimated from the average size of the events applied, when the unit is bytes). */
  eventsBehind: number | null;
  events: number;
  batches: number;
  skippedEvents: number;
  resyncs: number;
  retries: number;
  /** Times the stream's source offset had moved under the sink, which then started again from it. */
  restarts: number;
  eventsPerSecond: number;
  elapsedMs: number;
  /** From the start to the first up-to-date response applied. */
  catchUpMs: number | null;
}

export declare class Sink extends EventEmitter {
  constructor(options: SinkOptions);
  readonly url: string;
  readonly stream: string;
  /** Resolves when the sink ends (live false and caught up, close(), the remote stream closed); rejects on a fatal error. */
  readonly done: Promise<void> | null;
  start(): Promise<void>;
  stats(): SinkStats;
  /** The stream's source offset in Postgres ('-1' if none). */
  recordedOffset(): Promise<string>;
  close(): Promise<void>;
  on(event: 'batch', listener: (batch: SinkBatch) => void): this;
  on(event: 'caught-up', listener: (stats: SinkStats) => void): this;
  on(event: 'resync' | 'retry' | 'restart' | 'warning', listener: (err: Error) => void): this;
}

export declare class StaleOffsetError extends Error {}

/** Starts a sink; await its done. */
export declare function sink(options: SinkOptions): Sink;
/** "P#k" -> { from: P, skip: k }; a plain offset -> skip 0. */
export declare function splitOffset(recorded: string): { from: string; skip: number };
