// Builds the dashboard into dist/ from the database the PG* variables name,
// without a request to any other host.
//
// Framework keeps the output of each data loader under
// src/.observablehq/cache and reuses it on the next build without running
// the loader again: a rebuild would show the old figures.  So the cache is
// removed first, and every loader runs against the database as it is now.
//
// Framework's own client code names libraries it loads only when a page
// uses them (React, DuckDB, Vega, d3-dsv for CSV files, ...) as npm:
// imports, and the build resolves the version of each, asking
// registry.npmjs.org unless its version cache (a directory per name@version
// under the cache's _npm/) has one.  The pages import their libraries from
// node_modules by name, never npm:, so those versions only end up in import
// expressions that never run: they are recorded here, from node_modules
// when installed and 0.0.0 otherwise.  A page that did use one of them would
// fail to build, its file being fetched from a CDN that is not asked.
// The telemetry Framework sends by default is turned off.
import {spawnSync} from "node:child_process";
import {existsSync, mkdirSync, readdirSync, readFileSync, rmSync} from "node:fs";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const framework = join(root, "node_modules/@observablehq/framework");
const cache = join(root, "src/.observablehq/cache");
rmSync(cache, {recursive: true, force: true});
rmSync(join(root, "dist"), {recursive: true, force: true});

function* sources(dir) {
  for (const entry of readdirSync(dir, {withFileTypes: true})) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (entry.name.endsWith(".js")) yield path;
  }
}
const names = new Set();
for (const file of sources(join(framework, "dist/client"))) {
  for (const [, specifier] of readFileSync(file, "utf8").matchAll(/["'`]npm:((?:@[\w.-]+\/)?[\w.-]+)/g)) {
    names.add(specifier);
  }
}
for (const name of names) {
  const pkg = join(root, "node_modules", name, "package.json");
  const version = existsSync(pkg) ? JSON.parse(readFileSync(pkg, "utf8")).version : "0.0.0";
  mkdirSync(join(cache, "_npm", `${name}@${version}`), {recursive: true});
}

const build = spawnSync(process.execPath, [join(framework, "dist/bin/observable.js"), "build"], {
  cwd: root,
  stdio: "inherit",
  env: {...process.env, OBSERVABLE_TELEMETRY_DISABLE: "true"}
});
process.exit(build.status ?? 1);
