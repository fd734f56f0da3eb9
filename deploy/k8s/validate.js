// Checks the Kubernetes manifests as each overlay applies them (kubectl apply -k DIR):
// follows each kustomization's `resources` (files and folders; the overlays use no
// patches), checks every document against the API schema of its apiVersion and kind
// (kubernetes-models), then what makes the manifests safe as shipped: no Secret (the
// admin token is the user's own), every container with a CPU limit and the locked-down
// securityContext, pods that run as non-root, and Services, PodDisruptionBudgets and
// autoscalers that select the overlay's pods. Exits 1 on any failure.
//   node validate.js cpu gpu
const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");

const modules = {
  "v1": "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "autoscaling/v2": "kubernetes-models/autoscaling/v2",
  "policy/v1": "kubernetes-models/policy/v1",
};

// The documents `dir`'s kustomization names, in order, each with the file it came from.
function render(dir) {
  const kustomization = yaml.load(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8"));
  const docs = [];
  for (const resource of kustomization.resources || []) {
    const where = path.join(dir, resource);
    if (fs.statSync(where).isDirectory()) {
      docs.push(...render(where));
    } else {
      for (const doc of yaml.loadAll(fs.readFileSync(where, "utf8"))) {
        if (doc) docs.push({file: where, doc});
      }
    }
  }
  return docs;
}

function matches(selector, labels) {
  return Object.entries(selector || {}).every(([key, value]) => labels[key] === value);
}

let failed = false;
function fail(where, why) {
  console.log(`${where}: ${why}`);
  failed = true;
}

for (const overlay of process.argv.slice(2)) {
  const docs = render(overlay);
  const deployments = docs.filter(({doc}) => doc.kind === "Deployment").map(({doc}) => doc);
  if (deployments.length === 0) fail(overlay, "no Deployment");
  for (const {file, doc} of docs) {
    const where = `${overlay} (${file}): ${doc.kind} ${doc.metadata && doc.metadata.name}`;
    const module = modules[doc.apiVersion];
    const Model = module && require(module)[doc.kind];
    if (!Model) {
      fail(where, `no schema for ${doc.apiVersion} ${doc.kind}`);
      continue;
    }
    try {
      new Model(doc).validate();
    } catch (error) {
      fail(where, `INVALID\n${error.message}`);
      continue;
    }
    if (doc.kind === "Secret") fail(where, "a Secret is shipped; the user creates their own");
    if (doc.kind === "Deployment") {
      const pod = doc.spec.template.spec;
      if (!(pod.securityContext && pod.securityContext.runAsNonRoot)) {
        fail(where, "pods may run as root (securityContext.runAsNonRoot)");
      }
      if (!matches(doc.spec.selector.matchLabels, doc.spec.template.metadata.labels)) {
        fail(where, "its selector does not match its own pods");
      }
      for (const container of pod.containers) {
        const limits = (container.resources && container.resources.limits) || {};
        if (!limits.cpu) fail(where, `container ${container.name} has no CPU limit`);
        const context = container.securityContext || {};
        if (context.allowPrivilegeEscalation !== false || context.readOnlyRootFilesystem !== true ||
            !(context.capabilities && (context.capabilities.drop || []).includes("ALL"))) {
          fail(where, `container ${container.name} is not locked down (securityContext)`);
        }
      }
    }
    const selector = doc.kind === "Service" ? doc.spec.selector
        : doc.kind === "PodDisruptionBudget" ? doc.spec.selector.matchLabels : null;
    if (selector &&
        !deployments.some((d) => matches(selector, d.spec.template.metadata.labels))) {
      fail(where, "selects none of the overlay's pods");
    }
    if (doc.kind === "HorizontalPodAutoscaler" &&
        !deployments.some((d) => d.metadata.name === doc.spec.scaleTargetRef.name)) {
      fail(where, `scales ${doc.spec.scaleTargetRef.name}, which the overlay lacks`);
    }
    if (!failed) console.log(`${where}: valid`);
  }
}
process.exit(failed ? 1 : 0);
