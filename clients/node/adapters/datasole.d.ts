import type { DurableState, Ttl } from '..';

/** datasole's StateBackend on a durable_state collection (type 'kv' by default). */
export declare class DurableStateBackend {
  constructor(ds: DurableState, opts?: { type?: string; stream?: string });
  /** Resolves once the subscriptions made so far are listening. */
  connect(): Promise<void>;
  get<T = unknown>(key: string): Promise<T | undefined>;
  set<T = unknown>(key: string, value: T, opts?: { ttl?: Ttl }): Promise<void>;
  delete(key: string): Promise<boolean>;
  /** handler(key, value) on every change of key (undefined when deleted) and every publish(key); '*' for all keys. */
  subscribe(key: string, handler: (key: string, value: unknown) => void): () => void;
  publish(key: string, value: unknown): Promise<void>;
  close(): Promise<void>;
}

/** Per-user keys with versions (type 'session' by default). */
export declare class SessionStore {
  constructor(ds: DurableState, opts?: { type?: string; stream?: string });
  static entityKey(userId: string, key: string): string;
  static parseKey(entityKey: string): [string, string];
  get<T = unknown>(userId: string, key: string): Promise<T | undefined>;
  getVersioned<T = unknown>(userId: string, key: string): Promise<{ value: T; version: number } | undefined>;
  /** Returns the version written; expectedVersion makes it a compare-and-set (code 40001). */
  set(userId: string, key: string, value: unknown, opts?: { expectedVersion?: number; ttl?: Ttl }): Promise<number>;
  delete(userId: string, key: string): Promise<boolean>;
  /** Every change in commit order; value undefined and version 0 when deleted. */
  onChange(handler: (userId: string, key: string, value: unknown, version: number) => void): () => void;
  ready(): Promise<void>;
  close(): Promise<void>;
}
