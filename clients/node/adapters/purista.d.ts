import type { StateStoreBaseClass, StoreBaseConfig } from '@purista/core';
import type { DurableState, DurableStateOptions, Ttl } from '..';

export interface DurableStateStoreConfig {
  /** A client to use (else one is made from connection and closed by destroy()). */
  client?: DurableState;
  connection?: DurableStateOptions;
  /** The collection's type ('purista_state'). */
  type?: string;
  stream?: string;
  /** Default TTL of setState. */
  ttl?: Ttl;
}

export declare class DurableStateStore extends StateStoreBaseClass<DurableStateStoreConfig> {
  constructor(config?: StoreBaseConfig<DurableStateStoreConfig>);
  setState(stateName: string, stateValue: unknown, opts?: { ttl?: Ttl }): Promise<void>;
}
