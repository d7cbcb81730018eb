import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadPipelines } from '../../src/pipeline/load.js';

// No Docker engine runs here: the file's shape is what can be checked.
const compose = parse(readFileSync(path.resolve('docker-compose.yml'), 'utf8'));

describe('docker-compose.yml', () => {
  it('runs a pinned MinIO with a health check', () => {
    const minio = compose.services.minio;
    expect(minio.image).toMatch(/minio\/minio:RELEASE\.\d{4}-/);
    expect(minio.command).toContain('server');
    expect(minio.healthcheck).toBeDefined();
    expect(minio.environment.MINIO_API_SYNC_EVENTS).toBe('on');
  });

  it('creates the buckets once MinIO is healthy', () => {
    const mk = compose.services['create-buckets'];
    expect(mk.image).toMatch(/minio\/mc:RELEASE\./);
    expect(mk.depends_on.minio.condition).toBe('service_healthy');
    const script = mk.command.join(' ');
    expect(script).toContain('mc mb --ignore-existing local/uploads');
    expect(script).toContain('mc mb --ignore-existing local/derived');
  });

  it('wires mediaflow to MinIO through MINIO_* and runs bucket pipelines that validate', () => {
    const mf = compose.services.mediaflow;
    expect(mf.build).toBe('.');
    expect(mf.depends_on['create-buckets'].condition).toBe('service_completed_successfully');
    expect(mf.environment.MINIO_ENDPOINT).toBe('http://minio:9000');
    expect(mf.environment.MINIO_ACCESS_KEY).toBe(compose.services.minio.environment.MINIO_ROOT_USER);
    expect(mf.environment.MINIO_SECRET_KEY).toBe(compose.services.minio.environment.MINIO_ROOT_PASSWORD);
    const mount = mf.volumes.find((v: string) => v.startsWith('./docker/pipelines:'));
    expect(mount).toBeDefined();
    expect(mf.command).toContain(mount.split(':')[1]);
    const pipelines = loadPipelines([path.resolve('docker/pipelines')]);
    const buckets = compose.services['create-buckets'].command.join(' ');
    for (const p of pipelines) {
      expect(p.source.type).toBe('bucket');
      if (p.source.type === 'bucket') expect(buckets).toContain(`local/${p.source.bucket}`);
      if (p.output.type === 'bucket') expect(buckets).toContain(`local/${p.output.bucket}`);
    }
  });

  it('has a Dockerfile that builds from the lock file and runs the CLI', () => {
    const dockerfile = readFileSync(path.resolve('Dockerfile'), 'utf8');
    expect(dockerfile).toContain('COPY package.json package-lock.json');
    expect(dockerfile).toContain('npm ci');
    // The launcher, so the image runs with the allocator settings it sets.
    expect(dockerfile).toMatch(/ENTRYPOINT \["bin\/mediaflow"\]/);
    expect(dockerfile).toContain('COPY bin ./bin');
  });
});

describe('docker-compose.scale.yml', () => {
  const scale = parse(readFileSync(path.resolve('docker-compose.scale.yml'), 'utf8'), { merge: true });

  it('runs one sources process and replicated workers on the same pipelines, ledger and queue', () => {
    const { sources, worker } = scale.services;
    expect(sources.command).toEqual(expect.arrayContaining(['run', '--role', 'sources']));
    expect(worker.command).toEqual(expect.arrayContaining(['run', '--role', 'worker']));
    expect(worker.deploy.replicas).toBeGreaterThan(1);
    expect(sources.environment).toEqual(worker.environment);
    expect(sources.environment.MEDIAFLOW_LEDGER).toMatch(/^postgres:\/\/[^@]+@postgres:5432\//);
    expect(sources.environment.MEDIAFLOW_QUEUE).toBe('redis://redis:6379');
    expect(sources.command[sources.command.indexOf('--pipelines') + 1]).toBe(worker.command[worker.command.indexOf('--pipelines') + 1]);
    for (const svc of [sources, worker]) {
      expect(svc.depends_on.postgres.condition).toBe('service_healthy');
      expect(svc.depends_on.redis.condition).toBe('service_healthy');
    }
  });

  it('pins PostgreSQL and Redis, and keeps every Redis key (no eviction, appendonly)', () => {
    const { postgres, redis } = scale.services;
    expect(postgres.image).toMatch(/^postgres:\d+\.\d+$/);
    expect(redis.image).toMatch(/^redis:\d+\.\d+\.\d+$/);
    expect(redis.command.join(' ')).toContain('--maxmemory-policy noeviction');
    expect(redis.command.join(' ')).toContain('--appendonly yes');
    const ledger = new URL(scale.services.sources.environment.MEDIAFLOW_LEDGER);
    expect(decodeURIComponent(ledger.username)).toBe(postgres.environment.POSTGRES_USER);
    expect(ledger.pathname.slice(1)).toBe(postgres.environment.POSTGRES_DB);
  });
});
