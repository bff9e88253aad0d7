// Strict checks of a rendered kustomization, beyond the schema validation
// of validate.js (which, like a non-strict API server, ignores fields it
// does not know):
//  1. Unknown fields fail, at any depth, as `kubectl apply
//     --validate=strict` fails on a real API server (e.g. `readinesProbe`,
//     `securityContext.runAsNonroot`). The known fields of each type come
//     from the OpenAPI spec of Kubernetes, as generated into the models of
//     @kubernetes/client-node (each model's attributeTypeMap: JSON name and
//     type of every field).
//  2. Every container (and init container) of a workload has resource
//     requests and limits (cpu, memory), liveness and readiness probes, and
//     runs non-root (runAsNonRoot, container or pod), with a read-only root
//     filesystem, no privilege escalation, every capability dropped and a
//     seccomp profile (container or pod).
//  3. With --images=A,B: every container image is one of A, B (the images
//     CI builds); with --image-pattern=REGEX: every image matches it.
// Usage: node strict.mjs MODELS_DIR NAME FILE [--images=A,B] [--image-pattern=REGEX]
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const [modelsDir, name, file, ...flags] = process.argv.slice(2);
const yaml = require("js-yaml");
let images = null;
let imagePattern = null;
for (const flag of flags) {
  if (flag.startsWith("--images=")) images = flag.slice("--images=".length).split(",");
  else if (flag.startsWith("--image-pattern=")) imagePattern = new RegExp(flag.slice("--image-pattern=".length));
  else throw new Error(`strict.mjs: unknown flag ${flag}`);
}

const errors = [];
const fail = (where, message) => errors.push(`check-k8s: ${name}: ${where}: ${message}`);

// Field maps: type name -> Map(JSON name -> type), or null if the type is
// not a model (a primitive or an alias such as IntOrString).
const models = new Map();
async function fieldsOf(type) {
  if (models.has(type)) return models.get(type);
  let fields = null;
  const modelFile = path.join(modelsDir, `${type}.js`);
  if (/^[A-Za-z0-9]+$/.test(type) && fs.existsSync(modelFile)) {
    const module = await import(pathToFileURL(modelFile).href);
    const model = module[type];
    if (model && Array.isArray(model.attributeTypeMap)) {
      fields = new Map(model.attributeTypeMap.map((a) => [a.baseName, a.type]));
    }
  }
  models.set(type, fields);
  return fields;
}

const typeName = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);

async function check(value, type, where) {
  if (value === null || value === undefined) return;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) return fail(where, `expected a list, got ${typeName(value)}`);
    for (let i = 0; i < value.length; i++) await check(value[i], m[1], `${where}[${i}]`);
    return;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (typeName(value) !== "object") return fail(where, `expected a map, got ${typeName(value)}`);
    for (const [k, v] of Object.entries(value)) await check(v, m[1], `${where}.${k}`);
    return;
  }
  switch (type) {
    case "any":
      return;
    case "string":
    case "Date":
      if (typeof value !== "string") fail(where, `expected a string, got ${typeName(value)}`);
      return;
    case "number":
      if (typeof value !== "number") fail(where, `expected a number, got ${typeName(value)}`);
      return;
    case "boolean":
      if (typeof value !== "boolean") fail(where, `expected true or false, got ${typeName(value)}`);
      return;
    case "IntOrString":
      if (typeof value !== "number" && typeof value !== "string") {
        fail(where, `expected a number or a string, got ${typeName(value)}`);
      }
      return;
  }
  const fields = await fieldsOf(type);
  if (fields === null) return fail(where, `no schema for type ${type}`);
  if (typeName(value) !== "object") return fail(where, `expected an object (${type}), got ${typeName(value)}`);
  for (const [key, v] of Object.entries(value)) {
    const sub = where ? `${where}.${key}` : key;
    if (!fields.has(key)) {
      fail(sub, `unknown field "${key}" (not in ${type}; misspelled?)`);
      continue;
    }
    await check(v, fields.get(key), sub);
  }
}

// "apps/v1" + Deployment -> V1Deployment; "autoscaling/v2" -> V2...; "v1" -> V1...
function modelOf(apiVersion, kind) {
  const version = apiVersion.split("/").pop();
  return version.charAt(0).toUpperCase() + version.slice(1) + kind;
}

function podSpecOf(doc) {
  const spec = doc.spec || {};
  switch (doc.kind) {
    case "Pod":
      return spec;
    case "CronJob":
      return spec.jobTemplate && spec.jobTemplate.spec && spec.jobTemplate.spec.template &&
        spec.jobTemplate.spec.template.spec;
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "Job":
      return spec.template && spec.template.spec;
    default:
      return null;
  }
}

function checkContainer(c, pod, where, init) {
  const sc = c.securityContext || {};
  const podSc = pod.securityContext || {};
  const r = c.resources || {};
  for (const kind of ["requests", "limits"]) {
    for (const resource of ["cpu", "memory"]) {
      if (!r[kind] || r[kind][resource] === undefined) {
        fail(where, `no resources.${kind}.${resource}`);
      }
    }
  }
  // Init containers run to completion: the API server refuses probes on them.
  for (const probe of init ? [] : ["livenessProbe", "readinessProbe"]) {
    if (!c[probe]) fail(where, `no ${probe}`);
  }
  const runAsNonRoot = sc.runAsNonRoot !== undefined ? sc.runAsNonRoot : podSc.runAsNonRoot;
  if (runAsNonRoot !== true) fail(where, "runAsNonRoot is not true (container or pod securityContext)");
  if (sc.readOnlyRootFilesystem !== true) fail(where, "securityContext.readOnlyRootFilesystem is not true");
  if (sc.allowPrivilegeEscalation !== false) fail(where, "securityContext.allowPrivilegeEscalation is not false");
  if (sc.privileged) fail(where, "securityContext.privileged");
  const drop = (sc.capabilities && sc.capabilities.drop) || [];
  if (!drop.includes("ALL")) fail(where, 'securityContext.capabilities.drop does not include "ALL"');
  if (sc.capabilities && sc.capabilities.add && sc.capabilities.add.length > 0) {
    fail(where, "securityContext.capabilities.add is not empty");
  }
  const seccomp = sc.seccompProfile || podSc.seccompProfile;
  if (!seccomp || !["RuntimeDefault", "Localhost"].includes(seccomp.type)) {
    fail(where, "no seccompProfile of type RuntimeDefault or Localhost (container or pod securityContext)");
  }
  if (images !== null && !images.includes(c.image)) {
    fail(where, `image "${c.image}" is not one CI builds (${images.join(", ")})`);
  }
  if (imagePattern !== null && !imagePattern.test(c.image || "")) {
    fail(where, `image "${c.image}" is not the broker image CI builds, in a registry with a version tag (${imagePattern.source})`);
  }
}

const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d != null);
let containers = 0;
for (const doc of docs) {
  const id = `${doc.kind}/${doc.metadata && doc.metadata.name}`;
  if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") continue;  // validate.js says so
  await check(doc, modelOf(doc.apiVersion, doc.kind), id);
  const pod = podSpecOf(doc);
  if (pod) {
    for (const list of ["initContainers", "containers"]) {
      for (const c of pod[list] || []) {
        containers++;
        const init = list === "initContainers";
        checkContainer(c, pod, `${id}: ${init ? "init container" : "container"} ${c.name}`, init);
      }
    }
  }
}
for (const e of errors) console.error(e);
if (errors.length > 0) process.exit(1);
console.log(`check-k8s: ${name}: ${docs.length} objects without unknown fields; ` +
  `${containers} containers with resources, probes and a locked-down securityContext` +
  (images || imagePattern ? "; images are CI's" : ""));
