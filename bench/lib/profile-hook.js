// Loaded into a process with `node --import` (NODE_OPTIONS, which the
// launcher passes on): a CPU profile of its main thread over a window the
// bench chooses, so start-up (module loading, the first collections) is not
// spread over the images as in a whole-run `--cpu-prof`.
//
//   BENCH_PROFILE_OUT=FILE           where the profile goes (.cpuprofile JSON)
//   BENCH_PROFILE_FROM=start|signal  start at once, or at the first SIGUSR2
// The profile ends at the next SIGUSR2, or as the process exits.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.BENCH_PROFILE_OUT;
if (out) {
  const session = new Session();
  session.connect();
  // A session of the same thread answers at once (the callbacks run before post returns).
  const post = (method, params = {}) => {
    let result;
    session.post(method, params, (err, r) => { if (err) throw err; result = r; });
    return result;
  };
  post('Profiler.enable');
  post('Profiler.setSamplingInterval', { interval: 250 }); // µs
  let state = 'idle';
  const start = () => { post('Profiler.start'); state = 'running'; };
  const stop = () => {
    if (state !== 'running') return;
    state = 'done';
    writeFileSync(out, JSON.stringify(post('Profiler.stop').profile));
  };
  if (process.env.BENCH_PROFILE_FROM === 'start') start();
  process.on('SIGUSR2', () => (state === 'idle' ? start() : stop()));
  process.on('exit', stop);
}
