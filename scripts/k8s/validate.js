// Validates every object of a rendered kustomization against the
// Kubernetes schemas (kubernetes-models). Usage: node validate.js NAME FILE
"use strict";
const fs = require("fs");
const yaml = require("js-yaml");

const [name, file] = process.argv.slice(2);
const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d != null);
let failed = 0;
if (docs.length === 0) {
  console.error(`check-k8s: ${name}: rendered no object`);
  process.exit(1);
}
for (const doc of docs) {
  const id = `${name}: ${doc.kind}/${doc.metadata && doc.metadata.name}`;
  if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") {
    console.error(`check-k8s: ${id}: no apiVersion or kind`);
    failed++;
    continue;
  }
  // "apps/v1" -> kubernetes-models/apps/v1/Deployment; "v1" -> kubernetes-models/v1/...
  let Model;
  try {
    Model = require(`kubernetes-models/${doc.apiVersion}/${doc.kind}`)[doc.kind];
  } catch (e) {
    console.error(`check-k8s: ${id}: unknown apiVersion/kind ${doc.apiVersion} ${doc.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (e) {
    console.error(`check-k8s: ${id}: invalid: ${e.message}`);
    failed++;
  }
}
if (failed > 0) process.exit(1);
console.log(`check-k8s: ${name}: ${docs.length} objects valid`);
