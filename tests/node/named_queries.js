// node-postgres through pgcohered in transaction mode: named (prepared) queries from
// several clients that share fewer server connections, a transaction, and an error.
// Usage: node named_queries.js <port> <database>
const { Client } = require('pg');

async function main() {
  const [port, database] = process.argv.slice(2);
  const clients = [];
  for (let i = 0; i < 6; i++) {
    const c = new Client({ host: '127.0.0.1', port: Number(port), user: 'postgres', database });
    await c.connect();
    clients.push(c);
  }
  for (let round = 0; round < 30; round++) {
    await Promise.all(clients.map(async (c, i) => {
      const r = await c.query({ name: 'add-one', text: 'SELECT $1::int + 1 AS v', values: [round * 10 + i] });
      if (r.rows[0].v !== round * 10 + i + 1) throw new Error(`bad result ${JSON.stringify(r.rows)}`);
      const s = await c.query({ name: `per-client-${i}`, text: `SELECT $1::text || '-${i}' AS s`, values: ['x'] });
      if (s.rows[0].s !== `x-${i}`) throw new Error(`bad result ${JSON.stringify(s.rows)}`);
    }));
  }
  const c = clients[0];
  await c.query('BEGIN');
  await c.query({ name: 'add-one', text: 'SELECT $1::int + 1 AS v', values: [1] });
  await c.query('CREATE TEMP TABLE node_t (x int)');
  await c.query({ name: 'ins', text: 'INSERT INTO node_t VALUES ($1)', values: [5] });
  const n = await c.query('SELECT count(*)::int AS n FROM node_t');
  await c.query('COMMIT');
  if (n.rows[0].n !== 1) throw new Error('transaction lost its rows');
  let failed = false;
  try {
    await c.query({ name: 'bad', text: 'SELECT 1/$1::int AS v', values: [0] });
  } catch (e) {
    failed = /division by zero/.test(e.message);
  }
  if (!failed) throw new Error('expected division by zero');
  const again = await c.query({ name: 'add-one', text: 'SELECT $1::int + 1 AS v', values: [41] });
  if (again.rows[0].v !== 42) throw new Error('statement lost after an error');
  await Promise.all(clients.map((x) => x.end()));
  console.log('ok');
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
