// The console's JavaScript budget (issue 16 acceptance): every .js file of
// the build, gzipped at level 9, together at most 350 KB. Prints each file
// and the total; exits 1 above the limit or when there is no build.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const LIMIT = 350 * 1024;
const dist = new URL('../dist/', import.meta.url).pathname;

/** Every file under `dir`. */
function files(dir) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    out = statSync(path).isDirectory() ? out.concat(files(path)) : out.concat([path]);
  }
  return out;
}

let all;
try {
  all = files(dist).filter((f) => f.endsWith('.js') || f.endsWith('.mjs'));
} catch {
  console.error('no console/dist: run npm run build first');
  process.exit(1);
}
if (all.length === 0) {
  console.error('console/dist holds no JavaScript: run npm run build first');
  process.exit(1);
}
let total = 0;
for (const f of all) {
  const gz = gzipSync(readFileSync(f), { level: 9 }).length;
  total += gz;
  console.log(`${relative(dist, f)}: ${(gz / 1024).toFixed(1)} KB gzipped`);
}
const verdict = total <= LIMIT ? 'within' : 'OVER';
console.log(`console JavaScript: ${(total / 1024).toFixed(1)} KB gzipped, ${verdict} the ${LIMIT / 1024} KB limit`);
process.exit(total <= LIMIT ? 0 : 1);
