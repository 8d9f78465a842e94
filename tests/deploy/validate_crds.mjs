// Validates custom resources against their CRD schemas, as generated into @kubernetes-models:
// the Prometheus Operator's (ServiceMonitor, PrometheusRule) and cert-manager's (Certificate).
//   node validate_crds.mjs NODE_MODULES_DIR < objects.json     (a JSON array of objects)
// Prints one line per object; exits 1 when any is invalid or of a kind it cannot check.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const PACKAGES = { "monitoring.coreos.com": "prometheus-operator", "cert-manager.io": "cert-manager" };
const [nodeModules] = process.argv.slice(2);
const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = false;
for (const object of objects) {
  const [group, version] = object.apiVersion.split("/");
  const packageName = PACKAGES[group] ?? "unknown";
  const file = `${nodeModules}/@kubernetes-models/${packageName}/${group}/${version}/${object.kind}.js`;
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
