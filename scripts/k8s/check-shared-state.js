// Checks of a rendered kustomization that uses shared state on Redis,
// beyond the schemas and strict.mjs:
//  - every Redis server container (an image named redis, or redis-server in
//    its command) takes its password from a Secret (--requirepass $(VAR),
//    VAR from a secretKeyRef: never a value in the manifest), keeps an AOF
//    (--appendonly yes: user grants are there) and never evicts
//    (--maxmemory-policy noeviction); a NetworkPolicy selects its pods and
//    lets only the broker's pods in; its pod mounts no Secret that holds
//    the broker's encryption keys;
//  - when the broker's config (ConfigMap token-broker-config) has
//    shared_state.redis: its password_file and key files are in Secrets
//    mounted into the broker's container, and the NetworkPolicies let the
//    broker reach the Redis or Sentinel port(s) the config names.
// Usage: node check-shared-state.js NAME FILE
"use strict";
const fs = require("fs");
const yaml = require("js-yaml");

const [name, file] = process.argv.slice(2);
const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d != null);
const errors = [];
const fail = (where, message) => errors.push(`check-k8s: ${name}: ${where}: ${message}`);

const podSpecOf = (doc) =>
  ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(doc.kind)
    ? doc.spec && doc.spec.template && doc.spec.template.spec
    : null;
const podLabelsOf = (doc) =>
  (doc.spec && doc.spec.template && doc.spec.template.metadata &&
    doc.spec.template.metadata.labels) || {};
// A selector's matchLabels all present in `labels` (matchExpressions are not
// used in k8s/: a selector with them counts as not matching).
const selects = (selector, labels) =>
  !!selector && !selector.matchExpressions &&
  Object.entries(selector.matchLabels || {}).every(([k, v]) => labels[k] === v);
const policies = docs.filter((d) => d.kind === "NetworkPolicy" && d.spec);
const policiesFor = (labels, type) =>
  policies.filter((p) => selects(p.spec.podSelector, labels) &&
    (p.spec.policyTypes || ["Ingress"]).includes(type));

// The Secrets a pod uses, by name: volumes (secret, projected) and env.
function secretsOf(pod) {
  const names = new Set();
  for (const v of pod.volumes || []) {
    if (v.secret) names.add(v.secret.secretName);
    for (const s of (v.projected && v.projected.sources) || []) {
      if (s.secret) names.add(s.secret.name);
    }
  }
  for (const c of [...(pod.containers || []), ...(pod.initContainers || [])]) {
    for (const e of c.env || []) {
      if (e.valueFrom && e.valueFrom.secretKeyRef) names.add(e.valueFrom.secretKeyRef.name);
    }
    for (const e of c.envFrom || []) if (e.secretRef) names.add(e.secretRef.name);
  }
  return names;
}

// The broker: its Deployment, container, and config.
const broker = docs.find((d) => d.kind === "Deployment" && d.metadata && d.metadata.name === "token-broker");
const brokerPod = broker && podSpecOf(broker);
const brokerLabels = broker ? podLabelsOf(broker) : {};
const workloads = docs.filter((d) => podSpecOf(d));
const brokerContainer = brokerPod && (brokerPod.containers || []).find((c) => c.name === "token-broker");
const configMap = docs.find((d) => d.kind === "ConfigMap" && d.metadata && d.metadata.name === "token-broker-config");
let config = null;
if (configMap && configMap.data && configMap.data["broker.yaml"]) {
  try {
    config = yaml.load(configMap.data["broker.yaml"]);
  } catch (e) {
    fail("ConfigMap/token-broker-config", `broker.yaml is not YAML: ${e.message.split("\n")[0]}`);
  }
}
const redisConfig = config && config.shared_state && config.shared_state.redis;

// The Secret (name) mounted into the broker's container that holds `path`.
function secretHolding(path) {
  if (!brokerContainer) return null;
  for (const m of brokerContainer.volumeMounts || []) {
    const dir = m.mountPath.replace(/\/+$/, "");
    if (!path.startsWith(dir + "/")) continue;
    const volume = (brokerPod.volumes || []).find((v) => v.name === m.name);
    if (volume && volume.secret) return volume.secret.secretName;
  }
  return null;
}

const keySecrets = new Set();
if (redisConfig) {
  const where = "ConfigMap/token-broker-config: shared_state.redis";
  if (!brokerContainer) fail(where, "no Deployment token-broker with a container token-broker");
  const files = [];
  if (redisConfig.password_file) files.push(["password_file", redisConfig.password_file]);
  for (const key of redisConfig.keys || []) {
    if (key && key.file) files.push([`keys (${key.id})`, key.file]);
  }
  for (const [field, path] of files) {
    const secret = secretHolding(String(path));
    if (secret === null) {
      fail(where, `${field} ${path} is not in a Secret mounted into the broker's container`);
    } else if (field.startsWith("keys")) {
      keySecrets.add(secret);
    }
  }
  // The ports the broker connects to: the address's, or every Sentinel's.
  const addresses = redisConfig.sentinel ? redisConfig.sentinel.addresses || [] : [redisConfig.address];
  const ports = new Set();
  for (const address of addresses) {
    const m = /:(\d+)$/.exec(String(address || ""));
    if (m && !String(address).startsWith("unix:")) ports.add(Number(m[1]));
  }
  const egress = policiesFor(brokerLabels, "Egress");
  if (egress.length > 0) {  // Egress restricted: something must allow Redis.
    for (const port of ports) {
      const allowed = egress.some((p) => (p.spec.egress || []).some((rule) =>
        !rule.ports || rule.ports.some((rp) => rp.port === port &&
          (rp.protocol || "TCP") === "TCP")));
      if (!allowed) {
        fail(where, `no NetworkPolicy lets the broker's pods reach Redis on TCP port ${port}`);
      }
    }
  }
}

// Redis servers in this kustomization.
let servers = 0;
for (const doc of docs) {
  const pod = podSpecOf(doc);
  if (!pod) continue;
  for (const c of pod.containers || []) {
    const argv = [...(c.command || []), ...(c.args || [])].map(String);
    if (!/(^|\/)redis[:@]/.test(c.image || "") && !argv.some((a) => /(^|\/)redis-server$/.test(a))) continue;
    servers++;
    const where = `${doc.kind}/${doc.metadata.name}: container ${c.name}`;
    const after = (flag) => {
      const i = argv.indexOf(flag);
      return i >= 0 && i + 1 < argv.length ? argv[i + 1] : null;
    };
    const password = after("--requirepass");
    const m = password && /^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(password);
    const env = m && (c.env || []).find((e) => e.name === m[1]);
    if (!env || !env.valueFrom || !env.valueFrom.secretKeyRef) {
      fail(where, "--requirepass is not $(VAR) with VAR from a Secret (secretKeyRef): " +
        "no password, or one written in the manifest");
    }
    if (after("--appendonly") !== "yes") {
      fail(where, "no --appendonly yes: user grants written since the last snapshot would be lost");
    }
    if (after("--maxmemory-policy") !== "noeviction") {
      fail(where, "no --maxmemory-policy noeviction: Redis could evict a user grant");
    }
    for (const secret of secretsOf(pod)) {
      if (keySecrets.has(secret)) {
        fail(where, `its pod uses Secret ${secret}, which holds the broker's encryption keys: Redis must never see them`);
      }
    }
    const labels = podLabelsOf(doc);
    const ingress = policiesFor(labels, "Ingress");
    if (ingress.length === 0) {
      fail(where, "no NetworkPolicy restricts who reaches Redis (Ingress)");
    }
    for (const p of ingress) {
      for (const rule of p.spec.ingress || []) {
        const peers = rule.from || [];
        // Each peer a pod selector (in the policy's namespace) with labels,
        // selecting the broker's pods and no other workload's here.
        const onlyBroker = peers.length > 0 && peers.every((peer) =>
          !peer.ipBlock && !peer.namespaceSelector && peer.podSelector &&
          Object.keys(peer.podSelector.matchLabels || {}).length > 0 &&
          selects(peer.podSelector, brokerLabels) &&
          workloads.every((w) => w === broker || !selects(peer.podSelector, podLabelsOf(w))));
        if (!onlyBroker) {
          fail(`NetworkPolicy/${p.metadata.name}`, "lets in more than the broker's pods " +
            "(every ingress rule to Redis must name only pods the broker's labels select)");
        }
      }
    }
  }
}

for (const e of errors) console.error(e);
if (errors.length > 0) process.exit(1);
const said = [];
if (redisConfig) said.push("the broker's Redis password and keys are mounted Secrets, its egress reaches Redis");
if (servers > 0) said.push(`${servers} Redis server(s) with a Secret password, AOF, noeviction, ingress from the broker only`);
if (said.length > 0) console.log(`check-k8s: ${name}: shared state: ${said.join("; ")}`);
