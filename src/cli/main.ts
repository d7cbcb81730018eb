import { Command, CommanderError, Option } from 'commander';
import { MediaflowError, PipelineError } from '../errors.js';
import { DEFAULT_RATE_LIMIT, formatRateLimit, parseRateLimit } from '../http/rate-limit.js';
import { dlqCommand } from './dlq.js';
import { processCommand } from './process.js';
import { runCommand } from './run.js';
import { statusCommand } from './status.js';
import { schemaCommand, validateCommand } from './validate.js';

const dataOption = () => new Option('--data <dir>', 'folder of the ledger').default('./.mediaflow').env('MEDIAFLOW_DATA');
const ledgerOption = () => new Option('--ledger <url>', 'a postgres:// URL to share the ledger between machines (default: SQLite in --data)').env('MEDIAFLOW_LEDGER');
const pipelinesOption = () => new Option('--pipelines <paths...>', 'pipeline files or folders').default(['./pipelines']);

/** Parses argv and runs one command; returns the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  let code = 0;
  const program = new Command('mediaflow')
    .description('Turns uploads into processed media')
    .exitOverride()
    .showHelpAfterError();

  program.command('run')
    .description('run the service: every source, the queue, the HTTP endpoint')
    .addOption(pipelinesOption())
    .addOption(dataOption())
    .addOption(ledgerOption())
    .addOption(new Option('--queue <url>', 'a redis:// URL: workers on many machines share one queue (BullMQ); default: in this process').env('MEDIAFLOW_QUEUE'))
    .addOption(new Option('--role <role>', 'all: everything; sources: watch, listen, serve HTTP and queue; worker: process queued jobs')
      .choices(['all', 'sources', 'worker']).default('all').env('MEDIAFLOW_ROLE'))
    .addOption(new Option('--lock-ms <ms>', 'with --queue: how long a dead worker\'s job waits before another worker takes it').default(30_000)
      .env('MEDIAFLOW_LOCK_MS').argParser((v) => positiveInt('--lock-ms', v)))
    .option('--concurrency <n>', 'jobs at once over all pipelines (default: as many as --image-concurrency)', (v) => positiveInt('--concurrency', v))
    .option('--image-concurrency <n>', 'images in the works at once (default: two a core plus two; 2 on one core)', (v) => positiveInt('--image-concurrency', v))
    .option('--high-water-mark <n>', 'sources wait while this many jobs are queued', (v) => positiveInt('--high-water-mark', v))
    .addOption(new Option('--port <n>', 'HTTP port (0: any free port, logged); see docs/HTTP.md').default(8080).env('MEDIAFLOW_PORT').argParser(port))
    .addOption(new Option('--host <address>', 'HTTP address to bind; other than loopback only with MEDIAFLOW_TOKEN').default('127.0.0.1').env('MEDIAFLOW_HOST'))
    .addOption(new Option('--rate-limit <max/window>', 'requests to /v1/* per client address, e.g. 300/10s; 0 or off: no limit')
      .default(DEFAULT_RATE_LIMIT, formatRateLimit(DEFAULT_RATE_LIMIT)).env('MEDIAFLOW_RATE_LIMIT')
      .argParser((v) => parseRateLimit(v)))
    .action(async (o) => { code = await runCommand(o); });

  program.command('validate')
    .description('check pipeline files; exit 1 with every problem otherwise')
    .argument('[paths...]', 'pipeline files or folders', ['./pipelines'])
    .action((paths: string[]) => { code = validateCommand(paths); });

  program.command('process')
    .description('process one file once, in the foreground')
    .argument('<file>', 'the input file')
    .requiredOption('--pipeline <name>', 'pipeline to run')
    .addOption(pipelinesOption())
    .addOption(dataOption())
    .addOption(ledgerOption())
    .action(async (file: string, o) => { code = await processCommand(file, o); });

  program.command('status')
    .description('jobs by state, backlog, recent failures')
    .option('--json', 'print one JSON object')
    .addOption(dataOption())
    .addOption(ledgerOption())
    .action(async (o) => { code = await statusCommand(o); });

  program.command('dlq')
    .description('inspect and replay dead letters')
    .argument('<action>', 'list | retry')
    .argument('[id]', 'job id to retry')
    .option('--all', 'retry every dead letter')
    .option('--json', 'print JSON (list)')
    .addOption(dataOption())
    .addOption(ledgerOption())
    .action(async (action: string, id: string | undefined, o) => { code = await dlqCommand(action, id, o); });

  program.command('schema', { hidden: true })
    .description('print the pipeline JSON Schema (--events: the event schema)')
    .option('--events', 'the events mediaflow takes and sends')
    .action((o: { events?: boolean }) => { code = schemaCommand(o.events ? 'events' : 'pipeline'); });

  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof PipelineError) { console.error(err.message); return 1; }
    if (err instanceof MediaflowError) { console.error(`mediaflow: ${err.message}`); return 1; }
    throw err;
  }
  return code;
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new MediaflowError('E_CONFIG', `Expected \`--port\` to be an integer from 0 to 65535, got \`${v}\``);
  return n;
}

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new MediaflowError('E_CONFIG', `Expected \`${name}\` to be an integer >= 1, got \`${v}\``);
  return n;
}
