// Checks deploy/ offline (scripts/check-deploy.sh runs it; docs/kubernetes.md,
// "How the manifests are checked"):
//  1. every YAML document parses (YAML 1.2, duplicate keys are errors);
//  2. each Kubernetes object validates against the API's JSON schema for its
//     apiVersion/kind (kubernetes-models: types, enums, required fields,
//     formats, generated from the Kubernetes OpenAPI spec);
//  3. no field is unknown to the API: the objects are type-checked by tsc
//     against the same package's TypeScript types (excess-property checks,
//     what kubeconform -strict does);
//  4. the sshsoak-specific rules: an Indexed Job with completions =
//     parallelism = --shard-count, one try per index, the key Secret mounted
//     read-only at 0400, every ConfigMap / Secret / PVC named exists with the
//     keys used, every sshsoak flag used is one docs/reference.md documents,
//     docs/kubernetes.md creates the Secret with the keys the Job mounts;
//  5. the Containerfile lints clean with dockerfile-utils (the Docker
//     language service's parser and linter).
// Exit 0 when all hold; else each problem is printed with its file and 1.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const k8sDir = path.join(root, "deploy/kubernetes");
const problems = [];
const problem = (where, text) => problems.push(`${where}: ${text}`);

// 1. Parse.
const docs = [];
for (const file of fs.readdirSync(k8sDir).filter((f) => f.endsWith(".yaml")).sort()) {
  const text = fs.readFileSync(path.join(k8sDir, file), "utf8");
  YAML.parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true }).forEach((d, i) => {
    const where = `deploy/kubernetes/${file}#${i}`;
    for (const e of d.errors) problem(where, `YAML: ${e.message}`);
    const obj = d.toJS();
    if (obj !== null && obj !== undefined) docs.push({ where, file, obj });
  });
}
if (docs.length === 0) problem("deploy/kubernetes", "no manifests");

// 2. Schema, per object.
const models = [];
for (const d of docs) {
  const { apiVersion, kind } = d.obj;
  if (kind === "Kustomization") {
    for (const r of d.obj.resources ?? []) {
      if (!fs.existsSync(path.join(k8sDir, r))) problem(d.where, `resources: ${r} does not exist`);
    }
    continue;
  }
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    problem(d.where, "apiVersion and kind are required");
    continue;
  }
  const group = apiVersion.includes("/") ? apiVersion : `${apiVersion}`;  // "v1" or "batch/v1"
  const modulePath = `kubernetes-models/${group}/${kind}`;
  let mod;
  try {
    mod = await import(modulePath);
  } catch {
    problem(d.where, `${apiVersion} ${kind} is not a Kubernetes API kind`);
    continue;
  }
  try {
    new mod[kind](d.obj).validate();
  } catch (e) {
    problem(d.where, `${kind} ${d.obj.metadata?.name}: ${e.message}`);
  }
  models.push({ ...d, modulePath, kind });
}

// 3. Unknown fields: each object as a typed constant, type-checked by tsc.
const gen = path.join(here, ".gen");
fs.rmSync(gen, { recursive: true, force: true });
fs.mkdirSync(gen);
let ts = "";
models.forEach((m, i) => {
  ts += `// ${m.where}\nimport type { I${m.kind} as T${i} } from "${m.modulePath}";\n`;
  ts += `export const doc${i}: T${i} = ${JSON.stringify(m.obj, null, 2)};\n`;
});
fs.writeFileSync(path.join(gen, "manifests.ts"), ts);
try {
  execFileSync(path.join(here, "node_modules/.bin/tsc"),
    ["--noEmit", "--strict", "--skipLibCheck", "--module", "nodenext", "--moduleResolution", "nodenext",
     "--target", "es2022", path.join(gen, "manifests.ts")], { cwd: here, encoding: "utf8", stdio: "pipe" });
} catch (e) {
  // Name the manifest each error is in: the comment above its constant.
  const lines = ts.split("\n");
  for (const out of `${e.stdout}${e.stderr}`.split("\n").filter((l) => l.includes("error TS"))) {
    const at = /manifests\.ts\((\d+),/.exec(out);
    let where = "deploy/kubernetes";
    if (at) for (let l = Number(at[1]) - 1; l >= 0; --l) if (lines[l].startsWith("// ")) { where = lines[l].slice(3); break; }
    problem(where, out.replace(/^.*error TS\d+: /, ""));
  }
}

// 4. sshsoak's own rules.
const byKind = (kind) => models.filter((m) => m.kind === kind);
const configMaps = new Map(byKind("ConfigMap").map((m) => [m.obj.metadata.name, m.obj.data ?? {}]));
const pvcs = new Set(byKind("PersistentVolumeClaim").map((m) => m.obj.metadata.name));
const reference = fs.readFileSync(path.join(root, "docs/reference.md"), "utf8");
const guide = fs.existsSync(path.join(root, "docs/kubernetes.md"))
  ? fs.readFileSync(path.join(root, "docs/kubernetes.md"), "utf8") : "";
const flagsUsed = (text) => [...text.matchAll(/(?:^|\s)(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]);
const checkFlags = (where, text) => {
  for (const flag of new Set(flagsUsed(text))) {
    if (!new RegExp("[`\\s]" + flag + "(?![a-z0-9-])").test(reference)) problem(where, `${flag} is not an sshsoak flag docs/reference.md documents`);
  }
};
for (const [name, data] of configMaps) if (typeof data.flags === "string") checkFlags(`ConfigMap ${name}`, data.flags);

const podSpecs = [
  ...byKind("Job").map((m) => ({ m, spec: m.obj.spec?.template?.spec })),
  ...byKind("Pod").map((m) => ({ m, spec: m.obj.spec })),
];
for (const { m, spec } of podSpecs) {
  const where = `${m.where} (${m.kind} ${m.obj.metadata?.name})`;
  if (!spec) continue;
  const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  for (const v of volumes.values()) {
    if (v.configMap) {
      const data = configMaps.get(v.configMap.name);
      if (!data) problem(where, `volume ${v.name}: no ConfigMap ${v.configMap.name} in deploy/kubernetes`);
      for (const item of v.configMap.items ?? []) {
        if (data && !(item.key in data)) problem(where, `volume ${v.name}: ConfigMap ${v.configMap.name} has no key ${item.key}`);
      }
    }
    if (v.persistentVolumeClaim && !pvcs.has(v.persistentVolumeClaim.claimName)) {
      problem(where, `volume ${v.name}: no PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}`);
    }
    if (v.secret) {
      if (v.secret.defaultMode !== 0o400) problem(where, `volume ${v.name}: the key's Secret must be mode 0400 (256), not ${v.secret.defaultMode}`);
      const created = new RegExp(`create secret generic ${v.secret.secretName}\\b([^\\n]*(\\\\\\n)?)+`).exec(guide);
      if (!created) problem(where, `docs/kubernetes.md has no \`kubectl create secret generic ${v.secret.secretName}\``);
      for (const item of v.secret.items ?? []) {
        if (created && !created[0].includes(`--from-file=${item.key}=`)) {
          problem(where, `docs/kubernetes.md creates ${v.secret.secretName} without the key ${item.key}`);
        }
      }
    }
  }
  for (const c of spec.containers ?? []) {
    for (const mount of c.volumeMounts ?? []) {
      const v = volumes.get(mount.name);
      if (!v) problem(where, `container ${c.name}: volumeMount ${mount.name} has no volume`);
      else if (v.secret && mount.readOnly !== true) problem(where, `container ${c.name}: the Secret ${mount.name} must be mounted readOnly`);
    }
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.configMapKeyRef;
      if (ref && !(configMaps.get(ref.name) && ref.key in configMaps.get(ref.name))) {
        problem(where, `container ${c.name}: env ${e.name} names ConfigMap ${ref.name} key ${ref.key}, which does not exist`);
      }
    }
    const command = [...(c.command ?? []), ...(c.args ?? [])].join("\n");
    if (/\bsshsoak\b/.test(command)) checkFlags(`${where} container ${c.name}`, command);
    if (m.kind === "Job") {
      const js = m.obj.spec;
      if (js.completionMode !== "Indexed") problem(where, "completionMode must be Indexed (JOB_COMPLETION_INDEX is the shard)");
      if (js.completions !== js.parallelism) problem(where, `completions (${js.completions}) and parallelism (${js.parallelism}) differ: every shard must run at once`);
      const count = /--shard-count\s+(\d+)/.exec(command);
      if (!count) problem(where, `container ${c.name}: no --shard-count N`);
      else if (Number(count[1]) !== js.completions) problem(where, `--shard-count ${count[1]} but completions ${js.completions}`);
      if (!/--run-id\s/.test(command)) problem(where, `container ${c.name}: no --run-id (all shards need the same)`);
      if (js.backoffLimitPerIndex !== 0) problem(where, "backoffLimitPerIndex must be 0: a retried shard would be a second run in its log");
      if (spec.restartPolicy !== "Never") problem(where, "restartPolicy must be Never");
    }
  }
}

// 5. The Containerfile.
const containerfile = path.join(root, "deploy/Containerfile");
if (!fs.existsSync(containerfile)) problem("deploy/Containerfile", "missing");
else {
  let out = "";
  try {
    out = execFileSync(path.join(here, "node_modules/.bin/dockerfile-utils"), ["lint", "--json", containerfile],
      { encoding: "utf8", stdio: "pipe" });
  } catch (e) {
    out = e.stdout ?? "";
    if (!out) problem("deploy/Containerfile", `dockerfile-utils failed: ${e.message}`);
  }
  if (out.trim()) {
    for (const d of JSON.parse(out)) {
      problem(`deploy/Containerfile:${d.range.start.line + 1}`, `${d.message} (dockerfile-utils, severity ${d.severity})`);
    }
  }
  // The build stage installs what scripts/setup.sh installs, by running it.
  if (!/RUN[^\n]*scripts\/setup\.sh/.test(fs.readFileSync(containerfile, "utf8"))) {
    problem("deploy/Containerfile", "the build stage must run scripts/setup.sh (the same packages as CI)");
  }
}

if (problems.length) {
  for (const p of problems) console.error(`check-deploy: ${p}`);
  console.error(`check-deploy: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`check-deploy: ${models.length} Kubernetes objects valid (schema, fields, sshsoak rules); Containerfile lints clean`);
