import * as Minio from 'minio';

/**
 * Builds a MinIO/S3 client from the environment:
 *   MINIO_ENDPOINT   URL with scheme, e.g. http://127.0.0.1:9000 (the scheme
 *                    decides TLS, so one variable says everything)
 *   MINIO_ACCESS_KEY, MINIO_SECRET_KEY
 *   MINIO_REGION     optional
 */
export function minioClientFromEnv(env: NodeJS.ProcessEnv = process.env): Minio.Client {
  const raw = required(env, 'MINIO_ENDPOINT');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`MINIO_ENDPOINT must be a URL like http://127.0.0.1:9000, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`MINIO_ENDPOINT must start with http:// or https://, got ${JSON.stringify(raw)}`);
  }
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    // A path would silently be ignored by the client; credentials belong in their own variables.
    throw new Error(`MINIO_ENDPOINT must be scheme://host[:port] only, got ${JSON.stringify(raw)}`);
  }
  const useSSL = url.protocol === 'https:';
  const port = url.port ? Number(url.port) : useSSL ? 443 : 80;
  // URL keeps IPv6 hosts bracketed; the client wants the bare address.
  const endPoint = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const region = env.MINIO_REGION?.trim();
  return new Minio.Client({
    endPoint,
    port,
    useSSL,
    accessKey: required(env, 'MINIO_ACCESS_KEY'),
    secretKey: required(env, 'MINIO_SECRET_KEY'),
    ...(region ? { region } : {}),
  });
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name]?.trim();
  if (!value) throw new Error(`${name} is not set (needed to connect to MinIO/S3)`);
  return value;
}
