// Node-RED settings on Kubernetes (manifests/base/03-ot-edge/nodered.yaml): the same choices as the local
// target's rendered settings (src/indmlops/targets/local/render.py, nodered_settings), with the user directory on the
// PVC at /data. The init container copies flows.json (config/nodered/flows.json) there on every start, so the
// ConfigMap stays the one source of the flow.
module.exports = {
  uiHost: "0.0.0.0",
  uiPort: 1880,
  userDir: "/data",
  flowFile: "flows.json",
  credentialSecret: false,
  flowFilePretty: true,
  logging: { console: { level: "info", metrics: false, audit: false } },
  // Flushed every second (default 30 s): a killed pod otherwise loses up to 30 s of context.
  contextStorage: { default: { module: "localfilesystem", config: { flushInterval: 1 } } },
};
