import { writeCopies } from '../lib/inputs.js';
await writeCopies(process.argv[2], Number(process.argv[3]));
