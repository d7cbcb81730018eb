import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { OutputRecord } from '../ledger/ledger.js';
import type { Service } from '../service.js';
import type { Store } from '../stores/store.js';

/** Outputs up to this size are checked against the checksum the ledger recorded before they are sent; larger ones by size only, and streamed. */
const VERIFIED_BYTES = 32 * 1024 * 1024;

/**
 * Types a browser may show in place. Anything else a step might one day
 * write goes as a download: served from the dashboard's own origin, an SVG
 * or HTML output could otherwise run script there.
 */
const INLINE = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/avif', 'image/gif', 'application/json']);

const ID = /^\d{1,15}$/;
const INDEX = /^\d{1,4}$/;

type Answer = { status: number; error: string; message: string };

async function bytesOf(store: Store, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await store.read(key)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * GET /v1/jobs/:id/outputs/:index — the bytes of one output of one job, as
 * the ledger recorded it: the store and key come from the job's row, never
 * from the request, so no request can name a file to read. An output
 * deleted since is 404; one overwritten since (a later version of the same
 * key, by size or checksum) is 410: it is no longer this job's.
 */
export function registerOutputs(v1: FastifyInstance, service: Service): void {
  v1.get('/v1/jobs/:id/outputs/:index', async (req, reply) => {
    const { id, index } = req.params as { id: string; index: string };
    const fail = (a: Answer) => reply.code(a.status).send({ error: a.error, message: a.message });
    if (!ID.test(id)) return fail({ status: 404, error: 'E_NOT_FOUND', message: `no job ${JSON.stringify(id.slice(0, 40))}` });
    if (!INDEX.test(index)) return fail({ status: 404, error: 'E_NOT_FOUND', message: `Expected an output index (0, 1, …), got ${JSON.stringify(index.slice(0, 40))}` });
    const job = await service.ledger.get(Number(id));
    if (!job) return fail({ status: 404, error: 'E_NOT_FOUND', message: `no job ${id}` });
    const output: OutputRecord | undefined = job.outputs[Number(index)];
    if (!output) return fail({ status: 404, error: 'E_NOT_FOUND', message: `job ${id} has ${job.outputs.length} output${job.outputs.length === 1 ? '' : 's'}; no output ${index}` });
    const store = service.stores.byName(output.store);
    const entry = await store.stat(output.key);
    if (!entry) return fail({ status: 404, error: 'E_NOT_FOUND', message: `output ${index} of job ${id} (${output.key} in ${output.store}) is gone: deleted or moved since` });
    const overwritten: Answer = { status: 410, error: 'E_GONE', message: `output ${index} of job ${id} (${output.key} in ${output.store}) was overwritten since, by a later job` };
    if (entry.size !== output.size) return fail(overwritten);
    let body: Buffer | Awaited<ReturnType<Store['read']>>;
    if (output.size > VERIFIED_BYTES || !output.sha256) body = await store.read(output.key);
    else {
      body = await bytesOf(store, output.key);
      if (createHash('sha256').update(body).digest('hex') !== output.sha256) return fail(overwritten);
    }
    const inline = INLINE.has(output.contentType);
    return reply
      .header('content-type', inline ? output.contentType : 'application/octet-stream')
      .header('content-disposition', inline ? 'inline' : 'attachment')
      // Opened on its own (a new tab), an output is a document of this origin: let it do nothing.
      .header('content-security-policy', "default-src 'none'; sandbox")
      .header('cache-control', 'no-store')
      .send(body);
  });
}
