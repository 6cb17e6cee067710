// Totals of one conformance run: node summarize.mjs REVISION RESULTS_DIR EXPECTED_FAILURES
//
// Reads every RESULTS_DIR/server-<scenario>-<time>/checks.json and the
// suite's frozen requirement set for REVISION. Prints, per scenario, the
// checks passed and failed, then the totals of the required (scored)
// scenarios and of those the set does not score. Exits 1 when a check
// failed in a required scenario, when a required scenario did not run, or
// when a check failed in an unscored scenario that EXPECTED_FAILURES does
// not list; and when a listed scenario passes (the list is stale).
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { createRequire } from "node:module";
import YAML from "yaml";

const [revision, dir, expectedFile] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const suite = dirname(require.resolve("@modelcontextprotocol/conformance/package.json"));
const req = YAML.parse(readFileSync(join(suite, "requirements", `${revision}.yaml`), "utf8"));
const required = new Set(req.server);
const expected = new Set(YAML.parse(readFileSync(expectedFile, "utf8"))?.server ?? []);

const results = new Map();
for (const d of readdirSync(dir)) {
  const m = d.match(/^server-(.+)-\d{4}-\d\d-\d\dT/);
  if (!m) continue;
  const checks = JSON.parse(readFileSync(join(dir, d, "checks.json"), "utf8"));
  const r = { passed: 0, failed: 0, failures: [] };
  for (const c of checks) {
    if (c.status === "SUCCESS") r.passed++;
    else if (c.status === "FAILURE") { r.failed++; r.failures.push(`${c.id}: ${c.errorMessage ?? ""}`); }
  }
  results.set(m[1], r);
}

let bad = false;
const total = { passed: 0, failed: 0, scenarios: 0 };
const other = { passed: 0, failed: 0, scenarios: 0 };
for (const [name, r] of [...results].sort()) {
  const scored = required.has(name);
  const t = scored ? total : other;
  t.passed += r.passed; t.failed += r.failed; t.scenarios++;
  const mark = r.failed ? (scored ? "FAIL" : expected.has(name) ? "expected" : "FAIL") : "ok";
  console.log(`${mark.padEnd(8)} ${name}: ${r.passed} passed, ${r.failed} failed${scored ? "" : " (not scored)"}`);
  if (r.failed && (scored || !expected.has(name))) { bad = true; r.failures.forEach((f) => console.log(`           ${f}`)); }
  if (!r.failed && expected.has(name)) { bad = true; console.log(`           listed in ${expectedFile} but passes: remove it`); }
}
for (const name of required) if (!results.has(name)) { bad = true; console.log(`FAIL     ${name}: required but did not run`); }
console.log(`${revision}: required ${total.scenarios} scenarios, ${total.passed} passed, ${total.failed} failed; ` +
  `not scored ${other.scenarios} scenarios, ${other.passed} passed, ${other.failed} failed (expected)`);
process.exit(bad ? 1 : 0);
