#!/usr/bin/env node
// The bucket path's limit: a bare loop over the objects of one bucket, GET
// object -> the bench image work (bench/lib/bench-work.js, mediaflow's
// thumbnail step) -> PUT object into another bucket, with no ledger, no
// hashing and no events. The same minio-js client mediaflow uses, with its
// defaults (keep-alive connections).
//
//   MINIO_ENDPOINT=… MINIO_ACCESS_KEY=… MINIO_SECRET_KEY=… node bench/contenders/bucket-loop.js IN_BUCKET OUT_BUCKET [--parallel N]
//
// Prints one JSON line: { images, seconds, imagesPerSecond, cpuSeconds, mainThreadCpuSeconds, peakRssMb }.
import * as Minio from 'minio';
import sharp from 'sharp';
import { benchWork } from '../lib/bench-work.js';
import { mainThreadCpuSecondsOf } from '../lib/common.js';

const args = process.argv.slice(2);
const i = args.indexOf('--parallel');
const parallel = i >= 0 ? Number(args[i + 1]) : 4;
const [inBucket, outBucket] = args.filter((a, k) => !a.startsWith('--') && !args[k - 1]?.startsWith('--'));
const url = new URL(process.env.MINIO_ENDPOINT);
const client = new Minio.Client({
  endPoint: url.hostname, port: Number(url.port || 80), useSSL: url.protocol === 'https:',
  accessKey: process.env.MINIO_ACCESS_KEY, secretKey: process.env.MINIO_SECRET_KEY,
});
sharp.cache(false);

const started = performance.now();
const names = [];
for await (const item of client.listObjectsV2(inBucket, '', true)) if (item.name) names.push(item.name);
let next = 0;
async function worker() {
  while (next < names.length) {
    const name = names[next++];
    const chunks = [];
    for await (const c of await client.getObject(inBucket, name)) chunks.push(c);
    const data = await benchWork(Buffer.concat(chunks));
    await client.putObject(outBucket, name.replace(/\.[^.]+$/, '.jpg'), data, data.length, { 'Content-Type': 'image/jpeg' });
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage();
console.log(JSON.stringify({
  images: names.length, seconds, imagesPerSecond: names.length / seconds, parallel,
  cpuSeconds: (cpu.user + cpu.system) / 1e6, mainThreadCpuSeconds: mainThreadCpuSecondsOf(process.pid), peakRssMb: process.resourceUsage().maxRSS / 1024,
}));
