import sharp from 'sharp';
import { readFileSync } from 'node:fs';
const src = readFileSync('fixtures/2569067123_aca715a2ee_o.jpg');
// variant A: append after EOI; variant B: COM after SOI
const a = Buffer.concat([src, Buffer.from('mediaflow-bench-0001')]);
const com = Buffer.from('mediaflow-bench-0001');
const seg = Buffer.alloc(4); seg[0]=0xff; seg[1]=0xfe; seg.writeUInt16BE(com.length+2, 2);
const b = Buffer.concat([src.subarray(0,2), seg, com, src.subarray(2)]);
for (const [n, buf] of [['orig', src], ['eoi', a], ['com', b]]) {
  try {
    const { data, info } = await sharp(buf, { failOn: 'warning' }).autoOrient().resize({ width: 720, height: 588, fit: 'inside', withoutEnlargement: true }).flatten({background:'#ffffff'}).jpeg({ quality: 80 }).toBuffer({ resolveWithObject: true });
    console.log(n, info.width, info.height, data.length);
  } catch (e) { console.log(n, 'ERR', e.message); }
}
