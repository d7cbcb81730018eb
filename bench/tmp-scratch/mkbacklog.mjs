import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { smallJpeg, uniqueCopy } from '../lib/inputs.js';
import { writePipeline, folderPipeline, THUMB_STEP } from '../lib/mediaflow.js';
const [dir, n] = [process.argv[2], Number(process.argv[3])];
const small = await smallJpeg();
await mkdir(path.join(dir, 'inbox'), { recursive: true });
for (let i = 0; i < n; i++) await writeFile(path.join(dir, 'inbox', `s${String(i).padStart(6, '0')}.jpg`), uniqueCopy(small, i, 'backlog'));
await writePipeline(path.join(dir, 'pipelines'), folderPipeline({ inbox: path.join(dir, 'inbox'), out: path.join(dir, 'out'), steps: [{ ...THUMB_STEP, width: 32, height: 32 }] }));
