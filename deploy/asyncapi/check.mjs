// What an integrator's AsyncAPI tools make of the exported contract:
//   node check.mjs ASYNCAPI_YAML OUT_DIR
// 1. the official parser (@asyncapi/parser 3.x) parses and validates the document; every
//    diagnostic is printed, and any error makes the exit code 1;
// 2. Modelina (@asyncapi/modelina) generates a Python model per message payload into OUT_DIR.
// The last line on stdout is a JSON summary: {"errors": n, "warnings": n, "models": [names]}.
import { readFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";
import { PythonGenerator } from "@asyncapi/modelina";

const [source, outDir] = process.argv.slice(2);
if (!source || !outDir) {
  console.error("usage: node check.mjs ASYNCAPI_YAML OUT_DIR");
  process.exit(2);
}

const text = await readFile(source, "utf8");
const { document, diagnostics } = await new Parser().parse(text, { source });
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning);
for (const d of diagnostics) {
  const level = d.severity === DiagnosticSeverity.Error ? "error" : `severity ${d.severity}`;
  console.log(`${level}: ${d.code}: ${d.message} at ${d.path.join(".")}`);
}

const names = [];
if (document !== undefined && errors.length === 0) {
  // Modelina parses the text itself (with the same parser), as its CLI does.
  const models = await new PythonGenerator().generate(text);
  await mkdir(outDir, { recursive: true });
  for (const model of models) {
    if (!model.modelName) continue; // a channel's union of messages: Python has no such type
    names.push(model.modelName);
    await writeFile(join(outDir, `${model.modelName}.py`), model.result + "\n");
  }
}
console.log(JSON.stringify({ errors: errors.length, warnings: warnings.length, models: names }));
process.exit(errors.length === 0 && document !== undefined ? 0 : 1);
