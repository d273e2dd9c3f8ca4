// A real TimescaleDB (PostgreSQL 17 + TimescaleDB, compiled to WASM by the PGlite fork) served over
// the PostgreSQL wire protocol on 127.0.0.1, so the `timescale` schema flavour and the sink can be
// tested where no TimescaleDB server can run. In memory: every start is a fresh, empty database.
//
//   node server.mjs --port 55499 [--host 127.0.0.1]
//
// Prints one line "ready <host>:<port>" on stdout once it accepts connections; stops on SIGTERM.
// Limits (see DESIGN.md "TimescaleDB here"): all connections share ONE backend session, COPY FROM
// STDIN crashes the engine, a password must be sent (any value), the job scheduler never runs.
import { PGlite } from '@electric-sql/pglite';
import { timescaledb } from '@electric-sql/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '55499' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});

const db = await PGlite.create({ extensions: { timescaledb } });
await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb');
const server = new PGLiteSocketServer({
  db,
  port: Number(values.port),
  host: values.host,
  maxConnections: 16,
});
await server.start();
process.stdout.write(`ready ${values.host}:${values.port}\n`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await server.stop();
  await db.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
