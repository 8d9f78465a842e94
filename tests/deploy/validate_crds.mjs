// Validates Prometheus Operator objects (ServiceMonitor, PrometheusRule) against the operator's
// CRD schemas, as generated into @kubernetes-models/prometheus-operator.
//   node validate_crds.mjs NODE_MODULES_DIR < objects.json     (a JSON array of objects)
// Prints one line per object; exits 1 when any is invalid or of a kind it cannot check.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [nodeModules] = process.argv.slice(2);
const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = false;
for (const object of objects) {
  const [group, version] = object.apiVersion.split("/");
  const file = `${nodeModules}/@kubernetes-models/prometheus-operator/${group}/${version}/${object.kind}.js`;
  let model;
  try {
    model = (await import(pathToFileURL(file).href))[object.kind];
  } catch (error) {
    console.log(`UNCHECKED ${object.kind}/${object.metadata.name}: no schema (${error.message})`);
    failed = true;
    continue;
  }
  try {
    new model(object).validate();
    console.log(`VALID ${object.kind}/${object.metadata.name}`);
  } catch (error) {
    console.log(`INVALID ${object.kind}/${object.metadata.name}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
