// The chat room example: node chat.mjs <command> (see README.md).
//   watch                       the room, live (snapshot, then every change)
//   join <user> [name]          a user joins
//   say <user> <text...>        a message
//   react <user> <msg> <emoji>  a reaction to message <msg> (its number in the room)
//   typing <user>               <user> is typing (for 5 seconds)
//   demo                        a short scripted conversation
import { createRequire } from 'node:module';

// the Node client and its packages (npm ci in clients/node)
const require = createRequire(new URL('../../clients/node/package.json', import.meta.url));
const { MaterializedState } = require('@durable-streams/state');
const { DurableState } = require('./index.js');
const { MaterializedFeed } = require('./adapters/materialized.js');

const ds = new DurableState({ stream: 'chat' });
const [cmd, ...args] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function messageId(n) {
  const { rows } = await ds.query(
    "SELECT key FROM state.get_type('message', 'chat') ORDER BY value->>'at', key OFFSET $1 LIMIT 1", [Number(n) - 1]);
  if (!rows.length) throw new Error(`no message ${n}`);
  return rows[0].key;
}

const commands = {
  async join(user, name = user) {
    await ds.put('user', user, { id: user, name, joined_at: new Date().toISOString() });
  },
  async say(user, ...words) {
    const id = `${Date.now().toString(36)}-${user}`;
    // the message and the end of "typing" in one atomic batch
    await ds.apply([
      { type: 'message', key: id, value: { id, user, text: words.join(' '), at: new Date().toISOString() }, headers: { operation: 'insert' } },
      { type: 'typing', key: user, headers: { operation: 'delete' } },
    ]);
  },
  async react(user, n, emoji) {
    const id = await messageId(n);
    await ds.put('reaction', `${id}/${user}/${emoji}`, { message: id, user, emoji });
  },
  async typing(user) {
    await ds.put('typing', user, true);
  },
  async demo() {
    await commands.join('ann', 'Ann');
    await commands.join('bob', 'Bob');
    await commands.typing('ann');
    await sleep(800);
    await commands.say('ann', 'Hi Bob, the state is in Postgres now.');
    await commands.typing('bob');
    await sleep(800);
    await commands.say('bob', 'And every subscriber sees every change, in order.');
    await commands.react('ann', 2, '👍');
    await commands.react('bob', 1, '🎉');
  },
  async watch() {
    const state = new MaterializedState();
    const feed = new MaterializedFeed(ds);
    const render = () => {
      const users = state.getType('user');
      const name = (id) => users.get(id)?.name ?? id;
      const messages = [...state.getType('message').values()].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
      const reactions = [...state.getType('reaction').values()];
      const lines = [`# chat (stream "chat", ${users.size} users) -- Ctrl-C to leave`, ''];
      messages.slice(-15).forEach((m, i) => {
        const r = reactions.filter((x) => x.message === m.id).map((x) => `${x.emoji} ${name(x.user)}`).join('  ');
        lines.push(`${String(messages.length - Math.min(messages.length, 15) + i + 1).padStart(3)}. ${name(m.user)}: ${m.text}${r ? `   [${r}]` : ''}`);
      });
      // typing entries expire: the worker deletes them with logged events
      const typing = [...state.getType('typing').keys()].map(name);
      lines.push('', typing.length ? `${typing.join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing...` : '');
      if (process.stdout.isTTY) process.stdout.write(`\x1b[2J\x1b[H${lines.join('\n')}\n`);
      else console.log(lines.join('\n'));
    };
    await feed.follow(state, { onApplied: render });
    render();
    await new Promise(() => {});
  },
};

if (!commands[cmd]) {
  console.error('usage: node chat.mjs watch | join <user> [name] | say <user> <text...> | react <user> <n> <emoji> | typing <user> | demo');
  process.exit(2);
}
try {
  await commands[cmd](...args);
} catch (err) {
  console.error(`error: ${err.message}${err.detail ? ` (${err.detail})` : ''}`);
  process.exitCode = 1;
} finally {
  await ds.close();
}
