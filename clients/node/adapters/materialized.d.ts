import type { DurableState, StateEvent, Subscription, Page } from '..';

/** What MaterializedState offers that the feed uses. */
export interface MaterializedLike {
  apply(event: StateEvent): void;
  applyBatch(events: StateEvent[]): void;
  clear(): void;
}

/** Folds protocol events into state: a reset clears it, other control events are skipped. */
export declare function applyEvents(state: MaterializedLike, events: StateEvent[]): void;
export declare function isControl(event: StateEvent): boolean;

export declare class MaterializedFeed {
  constructor(ds: DurableState, opts?: { stream?: string });
  readonly stream: string;
  /** The live entities as insert events, and the offset the snapshot is at. */
  snapshot(): Promise<Page>;
  /** Events after since (control events included). */
  changes(since?: string, opts?: { maxEvents?: number }): Promise<Page>;
  /** Replaces state's content with the snapshot; returns its offset. */
  load(state: MaterializedLike): Promise<string>;
  /** load(), then keeps state current through the lossless subscription. */
  follow(state: MaterializedLike, opts?: { pageSize?: number; onApplied?: (events: StateEvent[], offset: string) => unknown }): Promise<Subscription>;
}
