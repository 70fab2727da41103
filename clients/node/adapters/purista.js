'use strict';
/*
 * A PURISTA state store on durable_state: getState of several names in one
 * round trip (state.get_many), setState as a logged upsert (with a TTL from
 * the store's config, the call's options or the collection's default), and
 * removeState as a logged delete.  Needs @purista/core (a peer dependency).
 */
const { StateStoreBaseClass, StatusCode, UnhandledError } = require('@purista/core');
const { DurableState } = require('..');

class DurableStateStore extends StateStoreBaseClass {
  /**
   * @param {object} [options] PURISTA's StoreBaseConfig: enableGet, enableSet,
   *   enableRemove, logger, logLevel, and config (this store's own):
   *   config.client: a DurableState (else one is made from config.connection,
   *   and closed by destroy()), config.type: the collection's type
   *   ('purista_state'), config.stream, config.ttl: default TTL of setState
   *   (milliseconds or an interval)
   */
  constructor(options = {}) {
    super('DurableStateStore', { ...options });
    const own = this.config.config ?? {};
    this.ownClient = !own.client;
    this.ds = own.client ?? new DurableState(own.connection ?? {});
    this.type = own.type ?? 'purista_state';
    this.stream = own.stream ?? this.ds.stream;
    this.ttl = own.ttl;
  }

  /* Errors of the database become PURISTA's UnhandledError (500), logged. */
  async _guard(what, name, fn) {
    try {
      return await fn();
    } catch (err) {
      const msg = `error in state store ${what} ${name}`;
      this.logger.error({ err }, msg);
      throw new UnhandledError(StatusCode.InternalServerError, msg);
    }
  }

  async getStateImpl(...stateNames) {
    const found = await this._guard('getting values', stateNames.join(', '),
      () => this.ds.getMany(this.type, stateNames, { stream: this.stream }));
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
    const ttl = this._setOpts?.ttl ?? this.ttl;
    await this._guard('setting value', stateName, () => this.ds.put(this.type, stateName,
      stateValue === undefined ? null : stateValue, { stream: this.stream, ttl }));
  }

  async removeStateImpl(stateName) {
    await this._guard('removing value', stateName,
      () => this.ds.remove(this.type, stateName, { stream: this.stream }));
  }

  async destroy() {
    if (this.ownClient) await this.ds.close();
    await super.destroy();
  }
}

module.exports = { DurableStateStore };
