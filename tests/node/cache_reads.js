// node-postgres through pgcohered with the query cache: the same parameterized read three
// times, each answer printed as JSON (the test compares them with PostgreSQL's own).
// Usage: node cache_reads.js <port> <database> <sql> <param>
const { Client } = require('pg');

async function main() {
  const [port, database, text, param] = process.argv.slice(2);
  const c = new Client({ host: '127.0.0.1', port: Number(port), user: 'postgres', database });
  await c.connect();
  try {
    for (let i = 0; i < 3; i++) {
      const r = await c.query({ text, values: [param] });
      console.log(JSON.stringify(r.rows));
    }
  } finally {
    await c.end();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
