// The action's main step: installs and builds meshflow in the action's directory when needed,
// brings the mesh in the spec up against the Temporal the inputs name, and sets the outputs. The
// mesh's name goes to the post step's state before anything is started, so the post step tears it
// down whatever happens next (a failed or cancelled `up` included).
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { root, cli, input, info, meshflow, runStep, saveState, setOutput, temporalEnv } = require('./lib.cjs');

/**
 * `install`: true (npm ci and build), false (use what is there), or auto (the default: install
 * unless this checkout already has its dependencies and a build, as in meshflow's own repository
 * after `npm ci && npm run build`).
 */
function install() {
  const mode = input('install') || 'auto';
  if (!['auto', 'true', 'false'].includes(mode)) throw new Error(`input install: ${mode}; say auto, true or false`);
  const built = fs.existsSync(cli) && fs.existsSync(path.join(root, 'node_modules', '.package-lock.json'));
  if (mode === 'false' || (mode === 'auto' && built)) {
    if (!fs.existsSync(cli)) throw new Error(`install: false, but ${cli} is missing: build meshflow or let it install`);
    return info(`meshflow is installed and built in ${root}`);
  }
  for (const args of [['ci'], ['run', 'build']]) {
    info(`$ npm ${args.join(' ')} (in ${root})`);
    const r = spawnSync('npm', args, { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed in ${root} (exit ${r.status ?? r.signal})`);
  }
}

runStep(() => {
  const env = temporalEnv(); // first: it masks the secrets before anything can print them
  const specInput = input('spec');
  if (!specInput) throw new Error('input spec is required: the path of the mesh spec in your repository');
  const spec = path.resolve(process.env.GITHUB_WORKSPACE || process.cwd(), specInput);
  if (!fs.existsSync(spec)) throw new Error(`input spec: ${spec} does not exist`);
  install();
  const mesh = JSON.parse(meshflow(['plan', spec, '--json'], { env, quiet: true })).mesh;
  saveState('mesh', mesh);
  setOutput('mesh', mesh);
  let upError;
  try {
    meshflow(['up', spec], { env, live: true });
  } catch (err) {
    upError = err; // the status below says how far it got
  }
  const status = JSON.parse(meshflow(['status', mesh, '--json'], { env, quiet: true }));
  setOutput('phase', status.phase);
  setOutput('status', JSON.stringify(status));
  const kubeconfigs = {};
  if (status.phase === 'ready') {
    for (const cluster of status.clusters) {
      kubeconfigs[cluster] = meshflow(['kubeconfig', mesh, cluster], { env }).trim();
    }
  }
  setOutput('kubeconfigs', JSON.stringify(kubeconfigs));
  if (status.phase !== 'ready') {
    const why = status.error || (upError && upError.message) || 'see the log above';
    throw new Error(`mesh ${mesh} is ${status.phase}, not ready: ${why}`);
  }
  info(`mesh ${mesh} is ready; the post step tears it down when the job ends`);
});
