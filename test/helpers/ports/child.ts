/** Child process entry of the ports, rings, pipes and memory tests: `node child.js ROLE ARGS...`, one JSON line per report. */
import { runRole } from './roles.js';

// Without arguments (the test runner loads every file under test/), do nothing.
if (process.argv.length > 2) {
  runRole(process.argv.slice(2), (o) => process.stdout.write(JSON.stringify(o) + '\n')).then(
    () => { /* exits when nothing is left to do */ },
    (e: unknown) => { process.stderr.write(String((e as Error).stack ?? e) + '\n'); process.exit(3); },
  );
}
