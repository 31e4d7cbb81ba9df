// node-postgres through pgcohered in transaction mode: client.on('notification') after
// LISTEN, notifications from another client, UNLISTEN.
// Usage: node listen.js <port> <database>
const { Client } = require('pg');

async function main() {
  const [port, database] = process.argv.slice(2);
  const opts = { host: '127.0.0.1', port: Number(port), user: 'postgres', database };
  const listener = new Client(opts);
  const sender = new Client(opts);
  await listener.connect();
  await sender.connect();
  const got = [];
  let wake = null;
  listener.on('notification', (msg) => {
    got.push(`${msg.channel}:${msg.payload}`);
    if (wake) wake();
  });
  const until = (n) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${JSON.stringify(got)}`)), 10000);
    const check = () => { if (got.length >= n) { clearTimeout(timer); resolve(); } };
    wake = check;
    check();
  });
  await listener.query('LISTEN node_ch');
  await sender.query("NOTIFY node_ch, 'a'");
  await sender.query({ text: 'SELECT pg_notify($1, $2)', values: ['node_ch', 'b'] });
  await until(2);
  await listener.query('UNLISTEN node_ch');
  await listener.query('LISTEN node_sync');
  await sender.query("NOTIFY node_ch, 'c'");
  await sender.query("NOTIFY node_sync, 'd'");
  await until(3);
  const expected = ['node_ch:a', 'node_ch:b', 'node_sync:d'];
  if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`got ${JSON.stringify(got)}`);
  await listener.end();
  await sender.end();
  console.log('ok');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
