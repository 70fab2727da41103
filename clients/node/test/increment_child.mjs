// One app-server process of counter.test.mjs: N increments, 4 in flight.
// Increments of one stream are serialized by its lock, held to commit, so
// with synchronous_commit on each waits for the previous one's WAL flush;
// this test is about lost updates, not durability, so it commits
// asynchronously (a crash may lose the last increments, never one between).
import { DurableState } from './helpers.mjs';

const [stream, n] = [process.argv[2], Number(process.argv[3])];
const ds = new DurableState({ stream, max: 4, pg: { options: '-c synchronous_commit=off' } });
const values = [];
let next = 0;
async function lane() {
  while (next < n) {
    next++;
    values.push(await ds.increment('counter', 'hits', 'n'));
  }
}
await Promise.all([lane(), lane(), lane(), lane()]);
await ds.close();
process.stdout.write(JSON.stringify({ done: values.length, values }));
