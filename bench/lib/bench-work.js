// The image work every contender does: exactly mediaflow's `thumbnail` step
// with the bench options (autoOrient, resize inside 720x588 without
// enlargement, flatten, JPEG q80, failOn 'warning'). One definition, so the
// bare loops cannot drift from each other.
import sharp from 'sharp';

/** input: a Buffer or a path; resolves to the JPEG output. */
export function benchWork(input) {
  return sharp(input, { failOn: 'warning' })
    .autoOrient()
    .resize({ width: 720, height: 588, fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#ffffff' })
    .jpeg({ quality: 80 })
    .toBuffer();
}
