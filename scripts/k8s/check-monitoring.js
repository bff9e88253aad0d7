// Checks the monitoring files: the Prometheus alert rules parse and have
// the fields Prometheus needs, the Grafana dashboard is JSON, and every
// tokenbroker_/grpc_server_ metric either names exists in the broker's
// metrics code. Usage: node check-monitoring.js ALERTS DASHBOARD METRICS_DIR
"use strict";
const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");

const [alertsFile, dashboardFile, metricsDir] = process.argv.slice(2);
let failed = 0;
const fail = (msg) => {
  console.error(`check-k8s: ${msg}`);
  failed++;
};

const source = fs
  .readdirSync(metricsDir)
  .filter((f) => f.endsWith(".cc"))
  .map((f) => fs.readFileSync(path.join(metricsDir, f), "utf8"))
  .join("\n")
  .replace(/"\s*\n\s*"/g, ""); // join C++ string literals split over lines
const known = new Set(source.match(/(tokenbroker|grpc_server)_[a-z_]+/g));
const checkNames = (where, expr) => {
  for (let name of expr.match(/\b(tokenbroker|grpc_server)_[a-z_]+/g) || []) {
    name = name.replace(/_(bucket|sum|count)$/, "");
    if (!known.has(name)) fail(`${where}: unknown metric ${name}`);
  }
};

const rules = yaml.load(fs.readFileSync(alertsFile, "utf8"));
let alerts = 0;
for (const group of (rules && rules.groups) || []) {
  if (!group.name) fail(`${alertsFile}: a group has no name`);
  for (const rule of group.rules || []) {
    alerts++;
    const where = `${alertsFile}: ${rule.alert}`;
    if (!rule.alert || !rule.expr) fail(`${where}: needs alert and expr`);
    if (!rule.annotations || !rule.annotations.summary) fail(`${where}: needs a summary`);
    if (!rule.labels || !rule.labels.severity) fail(`${where}: needs labels.severity`);
    checkNames(where, String(rule.expr));
  }
}
if (alerts === 0) fail(`${alertsFile}: no alert rules`);

const dashboard = JSON.parse(fs.readFileSync(dashboardFile, "utf8"));
let panels = 0;
for (const panel of dashboard.panels || []) {
  for (const target of panel.targets || []) {
    panels++;
    checkNames(`${dashboardFile}: panel "${panel.title}"`, String(target.expr));
  }
}
if (panels === 0) fail(`${dashboardFile}: no panel queries`);

if (failed > 0) process.exit(1);
console.log(`check-k8s: monitoring: ${alerts} alert rules, ${panels} panel queries; metric names known`);
