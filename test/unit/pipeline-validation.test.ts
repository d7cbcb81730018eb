import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventsJsonSchema } from '../../src/events/event-schema.js';
import { describe, expect, it } from 'vitest';
import { PipelineError } from '../../src/errors.js';
import { loadPipelines, parsePipeline } from '../../src/pipeline/load.js';
import { pipelineJsonSchema } from '../../src/pipeline/schema.js';

const base = {
  name: 'p',
  source: { type: 'folder', path: './inbox' },
  steps: [{ id: 'thumb', use: 'thumbnail', width: 100 }],
  output: { type: 'folder', path: './out' },
};

function problems(doc: unknown, file = 'pipelines/p.json') {
  try {
    parsePipeline(file, JSON.stringify(doc), '/srv');
  } catch (err) {
    expect(err).toBeInstanceOf(PipelineError);
    return (err as PipelineError).problems;
  }
  throw new Error('expected the pipeline to be invalid');
}

describe('pipeline validation', () => {
  it('fills defaults and resolves folder paths against the working directory', () => {
    const p = parsePipeline('p.json', JSON.stringify(base), '/srv');
    expect(p.source).toMatchObject({ path: '/srv/inbox', include: ['**/*'], exclude: [] });
    expect(p.output).toMatchObject({ path: '/srv/out', key: '{dir}/{name}/{id}.{ext}' });
    expect(p.retry).toEqual({ attempts: 3, backoffMs: 500, maxBackoffMs: 60000 });
    expect(p.onDelete).toBe('keep');
    expect(p.fingerprint).toMatch(/^[0-9a-f]{32}$/);
  });

  it('names the file, the JSON path, what was expected and what was found', () => {
    const [p] = problems({ ...base, steps: [{ id: 'thumb', use: 'thumbnail', width: 'big' }] });
    expect(p).toMatchObject({ file: 'pipelines/p.json', path: '$.steps[0].width', expected: 'number' });
    expect(p!.found).toContain('"big"');
  });

  it('rejects unknown keys at any depth', () => {
    const list = problems({ ...base, colour: 'red', output: { ...base.output, compress: true } });
    expect(list.map((p) => p.path).sort()).toEqual(['$.colour', '$.output.compress']);
    expect(list[0]!.message).toMatch(/unknown key/);
  });

  it('reports an unknown step type and source type at their discriminator', () => {
    const list = problems({ ...base, source: { type: 'ftp' }, steps: [{ id: 'x', use: 'blur' }] });
    expect(list.map((p) => p.path).sort()).toEqual(['$.source.type', '$.steps[0].use']);
  });

  it('rejects duplicate step ids and a key template that would overwrite outputs', () => {
    const list = problems({
      ...base,
      steps: [{ id: 'a', use: 'metadata' }, { id: 'a', use: 'metadata' }],
      output: { type: 'folder', path: './out', key: '{name}.{ext}' },
    });
    expect(list.map((p) => p.path).sort()).toEqual(['$.output.key', '$.steps[1].id']);
  });

  it('rejects an output inside its own source unless the source excludes it', () => {
    const looping = { ...base, output: { type: 'folder', path: './inbox/derived' } };
    expect(problems(looping)[0]).toMatchObject({ path: '$.output', message: expect.stringContaining('derived/**') });
    expect(() => parsePipeline('p.json', JSON.stringify({ ...looping, source: { ...base.source, exclude: ['derived/**'] } }), '/srv')).not.toThrow();
    const bucketLoop = { ...base, source: { type: 'bucket', bucket: 'media', prefix: '' }, output: { type: 'bucket', bucket: 'media', prefix: 'derived/' } };
    expect(problems(bucketLoop)[0]!.path).toBe('$.output');
    // A sibling folder whose name merely starts the same is not inside.
    expect(() => parsePipeline('p.json', JSON.stringify({ ...base, output: { type: 'folder', path: './inbox-out' } }), '/srv')).not.toThrow();
  });

  it('checks the message-queue sources like the others: path-precise errors, defaults, loops into their bucket', () => {
    const amqp = { type: 'amqp', url: 'amqp://guest:guest@127.0.0.1:5672', queue: 'uploads', bucket: 'media' };
    const nats = { type: 'nats', servers: 'nats://127.0.0.1:4222', stream: 'MEDIA', consumer: 'mediaflow', bucket: 'media' };
    const out = { type: 'bucket', bucket: 'derived' };
    expect(parsePipeline('p.json', JSON.stringify({ ...base, source: amqp, output: out }), '/srv').source).toMatchObject({ routingKey: '#', prefetch: 16, prefix: '', include: ['**/*'] });
    expect(parsePipeline('p.json', JSON.stringify({ ...base, source: nats, output: out }), '/srv').source).toMatchObject({ ackWaitMs: 60_000, maxDeliver: 10 });
    expect(problems({ ...base, source: { ...amqp, url: 'http://127.0.0.1' }, output: out })[0]).toMatchObject({ path: '$.source.url', message: expect.stringContaining('amqp://') });
    expect(problems({ ...base, source: { ...amqp, queue: undefined }, output: out })[0]).toMatchObject({ path: '$.source.queue' });
    expect(problems({ ...base, source: { ...amqp, prefetch: 0 }, output: out })[0]).toMatchObject({ path: '$.source.prefetch' });
    expect(problems({ ...base, source: { ...nats, stream: 'a.b' }, output: out })[0]).toMatchObject({ path: '$.source.stream' });
    expect(problems({ ...base, source: { ...nats, bucket: undefined }, output: out })[0]).toMatchObject({ path: '$.source.bucket' });
    expect(problems({ ...base, source: { ...nats, servers: 'nats://x', topic: 'y' }, output: out })[0]).toMatchObject({ path: '$.source.topic' });
    // Its bucket's notifications come through the queue: outputs into that bucket, not excluded, would loop.
    expect(problems({ ...base, source: amqp, output: { type: 'bucket', bucket: 'media', prefix: 'derived/' } })[0]!.path).toBe('$.output');
  });

  it('reports bad JSON with the file name', () => {
    expect(() => parsePipeline('broken.json', '{ "name": ', '/srv')).toThrow(/broken\.json: \$: not valid JSON/);
  });

  it('collects problems of every file and duplicate names across files', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-validate-'));
    writeFileSync(path.join(dir, 'a.json'), JSON.stringify(base));
    writeFileSync(path.join(dir, 'b.json'), JSON.stringify(base));
    writeFileSync(path.join(dir, 'c.json'), JSON.stringify({ ...base, name: 'c', steps: [] }));
    try {
      loadPipelines([dir]);
      throw new Error('expected failure');
    } catch (err) {
      const list = (err as PipelineError).problems;
      expect(list.find((p) => p.file.endsWith('b.json'))?.message).toMatch(/already used/);
      expect(list.find((p) => p.file.endsWith('c.json'))?.path).toBe('$.steps');
    }
  });

  it('the fingerprint changes with the steps and nothing else', () => {
    const a = parsePipeline('p.json', JSON.stringify(base), '/srv');
    const renamed = parsePipeline('p.json', JSON.stringify({ ...base, name: 'q', concurrency: 3, source: { ...base.source, path: './elsewhere' } }), '/srv');
    const reordered = parsePipeline('p.json', JSON.stringify({ output: base.output, steps: [{ width: 100, use: 'thumbnail', id: 'thumb' }], source: base.source, name: 'p' }), '/srv');
    const edited = parsePipeline('p.json', JSON.stringify({ ...base, steps: [{ id: 'thumb', use: 'thumbnail', width: 101 }] }), '/srv');
    expect(renamed.fingerprint).toBe(a.fingerprint);
    expect(reordered.fingerprint).toBe(a.fingerprint);
    expect(edited.fingerprint).not.toBe(a.fingerprint);
  });

  it('maxFrames at its default keeps the fingerprint pipelines had before it existed; another value changes it', () => {
    // Computed by the release before maxFrames: were it to change, an upgrade would reprocess every input.
    const before = 'd7a11a43e6458aa1eed45581db144748';
    expect(parsePipeline('p.json', JSON.stringify(base), '/srv').fingerprint).toBe(before);
    expect(parsePipeline('p.json', JSON.stringify({ ...base, maxFrames: 300 }), '/srv').fingerprint).toBe(before);
    expect(parsePipeline('p.json', JSON.stringify({ ...base, maxFrames: 50 }), '/srv').fingerprint).not.toBe(before);
  });

  it('maxFrames is a whole number of at least 1, 300 by default', () => {
    expect(parsePipeline('p.json', JSON.stringify(base), '/srv').maxFrames).toBe(300);
    expect(problems({ ...base, maxFrames: 0 })[0]).toMatchObject({ path: '$.maxFrames' });
    expect(problems({ ...base, maxFrames: 2.5 })[0]).toMatchObject({ path: '$.maxFrames' });
  });

  it('the shipped examples are valid', () => {
    const list = loadPipelines([path.resolve('pipelines')]);
    expect(list.length).toBeGreaterThanOrEqual(2);
  });
});

describe('schema/pipeline.schema.json', () => {
  it('is in sync with the validator (run `npm run schema` to regenerate)', () => {
    const committed = JSON.parse(readFileSync(path.resolve('schema/pipeline.schema.json'), 'utf8'));
    expect(committed).toEqual(pipelineJsonSchema());
  });
});

describe('schema/events.schema.json', () => {
  it('is in sync with the event validators (run `npm run schema` to regenerate)', () => {
    const committed = JSON.parse(readFileSync(path.resolve('schema/events.schema.json'), 'utf8'));
    expect(committed).toEqual(eventsJsonSchema());
  });
});
