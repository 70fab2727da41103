'use strict';
/*
 * A PURISTA state store on durable_state: getState of several names in one
 * round trip (state.get_many), setState as a logged upsert (with a TTL from
 * the store's config, the call's options or the collection's default), and
 * removeState as a logged delete.  Needs @purista/core (a peer dependency).
 */
const { StateStoreBaseClass } = require('@purista/core');
const { DurableState } = require('..');

class DurableStateStore extends StateStoreBaseClass {
  /**
   * @param {object} [config] StoreBaseConfig plus:
   *   client: a DurableState (else one is made from connection and closed by destroy()),
   *   connection: DurableState options, type: the collection's type ('purista_state'),
   *   stream: its stream, ttl: default TTL of setState (milliseconds or interval)
   */
  constructor(config = {}) {
    super('DurableStateStore', { ...config });
    this.ownClient = !config.client;
    this.ds = config.client ?? new DurableState(config.connection ?? {});
    this.type = config.type ?? 'purista_state';
    this.stream = config.stream ?? this.ds.stream;
  }

  async getStateImpl(...stateNames) {
    const found = await this.ds.getMany(this.type, stateNames, { stream: this.stream });
    const result = {};
    for (const name of stateNames) result[name] = found[name];
    return result;
  }

  /** setState(name, value, {ttl}) also takes a TTL for this one value. */
  async setState(stateName, stateValue, opts) {
    this._setOpts = opts;
    try {
      return await super.setState(stateName, stateValue);
    } finally {
      this._setOpts = undefined;
    }
  }

  async setStateImpl(stateName, stateValue) {
    const ttl = this._setOpts?.ttl ?? this.config.ttl;
    await this.ds.put(this.type, stateName, stateValue === undefined ? null : stateValue,
      { stream: this.stream, ttl });
  }

  async removeStateImpl(stateName) {
    await this.ds.remove(this.type, stateName, { stream: this.stream });
  }

  async destroy() {
    if (this.ownClient) await this.ds.close();
    await super.destroy();
  }
}

module.exports = { DurableStateStore };
