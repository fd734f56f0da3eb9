// Checks each Kubernetes document in the given files against the API schema of its
// apiVersion and kind (kubernetes-models); exits 1 on the first invalid one.
const fs = require("fs");
const yaml = require("js-yaml");

const modules = {
  "v1": "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "autoscaling/v2": "kubernetes-models/autoscaling/v2",
  "policy/v1": "kubernetes-models/policy/v1",
};

let failed = false;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
    if (!doc) continue;
    const where = `${file}: ${doc.kind} ${doc.metadata && doc.metadata.name}`;
    const module = modules[doc.apiVersion];
    const Model = module && require(module)[doc.kind];
    if (!Model) {
      console.log(`${where}: no schema for ${doc.apiVersion} ${doc.kind}`);
      failed = true;
      continue;
    }
    try {
      new Model(doc).validate();
      console.log(`${where}: valid`);
    } catch (error) {
      console.log(`${where}: INVALID\n${error.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
