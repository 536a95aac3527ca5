// Builds the page into the archiver's package (sift_archiver/static/), or into the directory
// given as the first argument (the reproducibility test). Deterministic: no timestamps, no
// absolute paths (no source maps, no metafile), the same esbuild pinned in package-lock.json.
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "../src/sift_archiver/static"));

await mkdir(out, { recursive: true });
await build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.js" },
  outdir: out,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  logLevel: "warning",
});
await copyFile(join(here, "index.html"), join(out, "index.html"));
console.log(`built the analyst page into ${out}`);
