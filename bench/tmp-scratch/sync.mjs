import sharp from 'sharp';
sharp.cache(false);
const small = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#369' } }).jpeg().toBuffer();
for (const variant of ['plain', 'failOn+limit', 'timeout', 'all']) {
  let sync = 0; const t0 = performance.now();
  for (let i = 0; i < 500; i++) {
    let img = sharp(small, variant === 'plain' || variant === 'timeout' ? {} : { failOn: 'warning', limitInputPixels: 268402689 });
    if (variant === 'timeout' || variant === 'all') img = img.timeout({ seconds: 120 });
    img = img.autoOrient().resize({ width: 32, height: 32, fit: 'inside', withoutEnlargement: true }).flatten({ background: '#ffffff' }).jpeg({ quality: 80 });
    const s = performance.now();
    const p = img.toBuffer({ resolveWithObject: true });
    sync += performance.now() - s;
    await p;
  }
  console.log(variant, 'sync ms/call', (sync / 500).toFixed(3), 'total ms/img', ((performance.now() - t0) / 500).toFixed(3));
}
